"""Atomic file writes: a hidden temporary file beside the target, renamed when complete.

A reader (or a later run) sees either the old file or the whole new one, never a part: an
exception, Ctrl-C or SIGTERM while writing leaves the target as it was and removes the
temporary file.  The rename makes the write atomic, not durable: there is no fsync.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from batchkit.errors import BatchkitError

_BUFFER = 1 << 20


def temp_path_for(target: Path) -> Path:
    """``.NAME.1a2b3c4d.tmp`` in the target's directory (so the rename stays on one disk)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_writer(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write ``target`` through a temporary file that replaces it only on success."""
    path = Path(target)
    temp = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(temp, "xb", buffering=_BUFFER)  # noqa: SIM115 - closed below
    except OSError as error:
        raise BatchkitError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with stream:
            yield stream
        os.replace(temp, path)
    except OSError as error:
        _remove(temp)
        if error.errno is None:  # not the disk's: a network error (requests') while copying
            raise
        raise BatchkitError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        _remove(temp)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
