"""What :func:`~batchkit.validate.validate_file` reads from, and the text it refuses.

A batch file is judged on its bytes (a byte-order mark, bytes that are not UTF-8, a raw line
separator are all findings), so the validator reads only bytes: a path, standard input, a
binary stream or lines of bytes.  Text (a ``str``, a text stream, a notebook's text-only
stdin) would hide those findings, so it is a :class:`~batchkit.errors.UsageError` that says
what to pass instead.  A stream is read with a bound, so memory never grows with a line.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from batchkit.errors import UsageError
from batchkit.lines import LongLine, read_lines

#: What validate_file takes: a path (``"-"`` for stdin) or a binary stream.
Source = str | os.PathLike[str] | BinaryIO

_NOT_BINARY = (
    "validate_file reads bytes: pass a path, a binary file (open(path, 'rb')) or the bytes "
    "in io.BytesIO(data), not {what}"
)


def lines_of(source: BinaryIO | Iterable[bytes], max_line: int) -> Iterator[bytes | LongLine]:
    """The lines of ``source``, bounded when it is a stream; a text source is a UsageError."""
    if isinstance(source, (str, bytes, bytearray, memoryview, io.TextIOBase)):
        what = "a text stream" if isinstance(source, io.TextIOBase) else type(source).__name__
        raise UsageError(_NOT_BINARY.format(what=what))
    if hasattr(source, "readline"):
        return read_lines(source, max_line)  # type: ignore[arg-type]
    return _bytes_only(source)


def _bytes_only(lines: Iterable[bytes]) -> Iterator[bytes]:
    for raw in lines:
        if not isinstance(raw, bytes):
            raise UsageError(_NOT_BINARY.format(what=f"lines of type {type(raw).__name__}"))
        yield raw


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes; replaced by a text-only stream (a notebook), a UsageError."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise UsageError(_NOT_BINARY.format(what="a text-only standard input"))
    return stream  # type: ignore[no-any-return]
