"""The files one build owns: their final names, their temporaries, and the locks on them.

A build writes hidden temporaries next to its outputs and renames them only when the whole
build succeeded (:meth:`OutputSet.commit`), so a failure never leaves a partial file under an
output name; on failure it removes them (:meth:`OutputSet.discard`).  A build killed outright
cannot: each temporary is locked while its build lives, and the next build of the same output
removes the unlocked leftovers (:meth:`OutputSet.remove_stale_temps`).  Here, apart from the
builder, because none of it depends on what the files hold.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from batchkit.errors import BatchkitError, UsageError

#: A temporary of this build's naming pattern older than this, and not locked by a live build,
#: is a leftover of a build that was killed: the next build of the same output removes it.
#: The lock is what protects a live build's files; the age only covers the microseconds
#: between a temporary's creation and its lock, so it is short: a build re-run right after a
#: kill -9 cleans up (a leftover can be 200 MB).
STALE_TEMP_SECONDS = 10


class OutputSet:
    """The files one build owns: its temporaries and the names they get at the end.

    The names are ``name.jsonl``, ``name-001.jsonl``, ``name-002.jsonl``... (a run numbered
    from 001 without gaps, so an unrelated ``name-2024.jsonl`` is never taken for one) and
    ``name.rejects.jsonl``.  The temporaries are ``.name.<8 hex digits>.tmp``; the build holds
    an exclusive lock (``flock``) on each until it is renamed or removed, which tells a later
    build whether the build that made a temporary is still alive.
    """

    def __init__(
        self, output: Path, *, overwrite: bool, create: Callable[[Path], BinaryIO]
    ) -> None:
        if output.name == ".jsonl":
            raise UsageError(
                f"{output}: the output needs a file name before .jsonl "
                f"(e.g. {output.parent / 'requests.jsonl'})"
            )
        if output.suffix != ".jsonl":
            raise UsageError(f"{output}: the output must end in .jsonl (the server refuses others)")
        self.directory = output.parent
        self.stem = output.name[: -len(".jsonl")]
        self.overwrite = overwrite
        #: Creates a new file for writing (never an existing one): the build's choice of buffer.
        self._create = create
        self._temps: list[Path] = []
        self._locks: list[int] = []
        self._refuse_existing()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(error, self.directory) from error
        self.remove_stale_temps()

    def single(self) -> Path:
        return self.directory / f"{self.stem}.jsonl"

    def numbered(self, number: int) -> Path:
        return self.directory / f"{self.stem}-{number:03d}.jsonl"

    def rejects(self) -> Path:
        return self.directory / f"{self.stem}.rejects.jsonl"

    def existing(self) -> list[Path]:
        found = [path for path in (self.single(), self.rejects()) if os.path.lexists(path)]
        number = 1
        while os.path.lexists(self.numbered(number)):
            found.append(self.numbered(number))
            number += 1
        return found

    def open_temp(self) -> tuple[Path, BinaryIO]:
        """A new hidden file next to the outputs (so that the final rename is atomic), locked."""
        path = self.directory / f".{self.stem}.{secrets.token_hex(4)}.tmp"
        self._temps.append(path)
        try:
            stream = self._create(path)
        except OSError as error:
            raise write_error(error, path) from error
        try:
            self._locks.append(_locked(path))
        except OSError as error:
            stream.close()
            raise write_error(error, path) from error
        return path, stream

    def remove_stale_temps(self) -> None:
        """Remove the temporaries a killed build of this output left, and only those.

        A build that ends in an exception, Ctrl-C or SIGTERM (in the CLI) removes its own;
        SIGKILL or a power cut leaves them.  A temporary is stale when no live build holds its
        lock (the kernel drops a dead process's locks, however it died) and it is older than
        :data:`STALE_TEMP_SECONDS` (which covers the instant between a temporary's creation
        and its lock).  So two builds of the same output at once never remove each other's
        temporaries, even a finished file that waited for many minutes for the rest of its
        build.  It is removed while locked, so no build can take it up in between.  Without
        ``flock`` (Windows) liveness cannot be told, and nothing is removed.
        """
        if sys.platform == "win32":
            return
        pattern = re.compile(rf"\.{re.escape(self.stem)}\.[0-9a-f]{{8}}\.tmp")
        cutoff = time.time() - STALE_TEMP_SECONDS
        with contextlib.suppress(OSError), os.scandir(self.directory) as entries:
            for entry in entries:
                if not pattern.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):  # a live build's lock, or it just vanished
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        fd = _locked(Path(entry.path))
                        try:
                            os.unlink(entry.path)
                        finally:
                            os.close(fd)

    def commit(self, parts: list[Path], rejects: Path | None) -> tuple[list[Path], Path | None]:
        """Rename the temporaries to their final names and remove stale outputs: all or nothing.

        A user must never find some parts of this build beside some of the last one's (a batch
        that mixes two builds).  So the old outputs are first moved aside, then the new ones
        renamed in; if any rename fails, what was done is undone and the old outputs are back
        as they were, the new ones again temporaries (which :meth:`discard` removes).  Only a
        build killed outright in those few renames can leave an old output as a hidden
        ``.name.<hex>.old`` file, which is never removed automatically: it may be all that is
        left of it.
        """
        if len(parts) == 1:
            final = [self.single()]
        else:
            final = [self.numbered(number) for number in range(1, len(parts) + 1)]
        rejects_final = self.rejects() if rejects is not None else None
        self._refuse_existing()
        moves = list(zip(parts, final, strict=True))
        if rejects is not None and rejects_final is not None:
            moves.append((rejects, rejects_final))
        done: list[tuple[Path, Path]] = []  # (from, to), in the order they were made
        set_aside: list[Path] = []
        try:
            for old in self.existing():
                aside = self.directory / f".{self.stem}.{secrets.token_hex(4)}.old"
                os.replace(old, aside)
                done.append((old, aside))
                set_aside.append(aside)
            for temp, path in moves:
                os.replace(temp, path)
                done.append((temp, path))
        except OSError as error:
            _undo(done)
            raise write_error(error, self.directory) from error
        for aside in set_aside:  # the old outputs, replaced or stale: gone for good now
            with contextlib.suppress(OSError):
                aside.unlink()
        self._temps.clear()
        self._unlock()
        return final, rejects_final

    def discard(self) -> None:
        """Remove every temporary; never raises (it runs while another error propagates)."""
        for path in self._temps:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        self._temps.clear()
        self._unlock()

    def _unlock(self) -> None:
        for fd in self._locks:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._locks.clear()

    def _refuse_existing(self) -> None:
        if self.overwrite:
            return
        existing = self.existing()
        if existing:
            raise UsageError(
                f"{existing[0]} already exists; use overwrite=True (--force) to replace it"
            )


def _undo(renames: list[tuple[Path, Path]]) -> None:
    """Rename back, newest first, as far as possible (it runs while an error propagates)."""
    for source, target in reversed(renames):
        with contextlib.suppress(OSError):
            os.replace(target, source)


def _locked(path: Path) -> int:
    """A descriptor holding an exclusive lock on ``path``; OSError if a live build holds one.

    The lock is on a descriptor of its own, so it outlasts the writer's stream: a finished
    file stays locked until the build renames it.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    if sys.platform != "win32":
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
    return fd


def write_error(error: OSError, where: Path) -> BatchkitError:
    """The error a failed write becomes: the file (or else ``where``) and the system's reason."""
    reason = error.strerror or str(error)
    return BatchkitError(f"cannot write {error.filename or where}: {reason}")


class TempWriter:
    """One temporary file being written, created on its first line."""

    def __init__(self, files: OutputSet) -> None:
        self._files = files
        self.path: Path | None = None
        self._stream: BinaryIO | None = None

    def write(self, line: bytes) -> None:
        try:
            if self._stream is None:
                self.path, self._stream = self._files.open_temp()
            self._stream.write(line)
        except OSError as error:
            raise write_error(error, self.path or self._files.directory) from error

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError as error:
                raise write_error(error, self.path or self._files.directory) from error
