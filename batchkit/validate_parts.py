"""One large file validated in several processes at once, with the report of one process.

Checking a line costs several times what reading it costs, and the machine has more than one
core.  So a large file is cut at line ends into parts; this process checks the first while a
forked child checks each of the others.

A line's checks depend on the lines before it in three ways only: its line number, the
validator's :class:`~batchkit.validate.Context` (the batch's endpoint and model, and the lines
that set them) and the custom_ids already used.  A child cannot know them for its part until
the parts before it are checked, so it starts from a guess:
- the line number, from the line ends before its part (counted: cheap);
- the context line 1 leaves (nearly every file names its endpoint and model there);
- no id used before its part.

Its findings are taken only where the guess was right (:meth:`~batchkit.validate.Validator.join`):
the parts before it ended in that context and used none of its ids.  Otherwise this process
checks that part and the rest itself, after all, as one process would.  Either way the report
is one process's, line for line (tests/test_validate_parts.py); the children only make it
sooner.

Children are forked (no interpreter to start, nothing to import again), and only where that is
safe: where ``os.fork`` exists, not on macOS (system libraries there may not survive a fork),
and only from a process with one thread (a fork copies a lock another thread holds).
"""

from __future__ import annotations

import io
import marshal
import mmap
import os
import pickle
import signal
import stat
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, cast

from batchkit.issues import FileReport
from batchkit.limits import Limits
from batchkit.lines import read_blocks
from batchkit.validate import Context, Part, Validator

MIB = 1 << 20
#: With ``jobs`` left to batchkit, no part is smaller than this: below it, a fork and the
#: answer's trip back cost about what the part saves (tests/benchmarks/bench_validate.py).
MIN_PART_BYTES = 4 * MIB
#: The most processes batchkit chooses by itself (``jobs=None``), however many cores.
MAX_AUTO_JOBS = 4
#: How much more of the file this process checks than each child (measured: a child's part
#: ends 10 to 20% later than this one's when the shares are equal).
HEAD_START = 1.12
#: How far past a cut a line end is looked for; a longer line leaves fewer parts.
_SEARCH = MIB
#: How much of the file a child maps at a time to count the lines before its part (a multiple
#: of every page size).
_WINDOW = 16 * MIB


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether this process may fork a child that runs Python: see the module's note."""
    return hasattr(os, "fork") and sys.platform != "darwin" and threading.active_count() == 1


def planned_parts(size: int, jobs: int | None) -> int:
    """How many parts a file of ``size`` bytes is checked in: ``jobs``, or with ``None`` as
    many as the cores allow (up to :data:`MAX_AUTO_JOBS`) with no part under
    :data:`MIN_PART_BYTES`; 1 where a fork is not safe."""
    if jobs is not None and jobs < 1:
        raise ValueError("jobs must be 1 or more")
    if not can_fork():
        return 1
    if jobs is None:
        jobs = min(usable_cores(), MAX_AUTO_JOBS, size // MIN_PART_BYTES)
    return max(1, min(jobs, size))


def validate_parts(
    stream: BinaryIO,
    path: str,
    endpoint: str | None,
    limits: Limits | None,
    max_issues: int,
    jobs: int | None,
) -> FileReport | None:
    """The report on the regular file open as ``stream`` (at its start), checked in up to
    ``jobs`` parts at once; ``None`` when it is checked in one (then the caller does it)."""
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(info.st_mode) or stream.tell() != 0:
        return None
    parts = planned_parts(info.st_size, jobs)
    if parts < 2:
        return None
    line_one = _line_one(fd)
    cuts = _cuts(fd, info.st_size, parts)
    if line_one is None or len(cuts) < 2:
        return None
    main = Validator(endpoint, limits, path=path, max_issues=max_issues)
    probe = Validator(endpoint, limits, path=path, max_issues=max_issues)
    probe.feed(line_one)
    start = probe.context()
    ends = [*cuts[1:], info.st_size]
    children: list[_Child] = []
    try:
        for cut, end in zip(cuts[1:], ends[1:], strict=True):
            last = end == info.st_size
            job = _PartJob(fd, cut, end, last, start, endpoint, limits, path, max_issues)
            children.append(_fork(job))
        _check_range(main, fd, 0, cuts[1])
        for child in children:
            part = child.answer()
            if part is None or not main.join(part):
                _check_range(main, fd, child.cut, info.st_size)
                break
    finally:
        for child in children:
            child.stop()
    return main.finish()


def _line_one(fd: int) -> bytes | None:
    """The file's first line with its line end, or ``None`` when it has none near the start."""
    head = os.pread(fd, _SEARCH, 0)
    end = head.find(b"\n")
    return head[: end + 1] if end >= 0 else None


def _cuts(fd: int, size: int, parts: int) -> list[int]:
    """Where each part starts: 0, then just after the first line end past each share.

    This process's share is :data:`HEAD_START` times a child's: a child first counts the
    lines before its part, and its answer has to come back.
    """
    cuts = [0]
    whole = HEAD_START + parts - 1
    for index in range(1, parts):
        at = max(int(size * (HEAD_START + index - 1) / whole), cuts[-1])
        found = os.pread(fd, _SEARCH, at).find(b"\n")
        if found >= 0 and cuts[-1] < at + found + 1 < size:
            cuts.append(at + found + 1)
    return cuts


def _check_range(validator: Validator, fd: int, start: int, end: int) -> None:
    validator.feed_items(read_blocks(_reader(fd, start, end), validator.limits.max_bytes))


@dataclass(frozen=True)
class _PartJob:
    """A child's work: the part from ``start`` to ``end`` (``last`` if the file's end), from
    the guess in the module's note."""

    fd: int
    start: int
    end: int
    last: bool
    context: Context
    endpoint: str | None
    limits: Limits | None
    path: str
    max_issues: int

    def __call__(self) -> Part:
        validator = Validator(
            self.endpoint, self.limits, path=self.path, max_issues=self.max_issues
        )
        line = _count_lines(self.fd, self.start)
        validator.resume(self.context, line)
        _check_range(validator, self.fd, self.start, self.end)
        return validator.part(self.context, line, last=self.last)


def _count_lines(fd: int, end: int) -> int:
    """The line ends before offset ``end``: found one by one in the mapped file, a window at a
    time (so that the pages it maps, which count as this process's memory, stay few)."""
    count = 0
    for start in range(0, end, _WINDOW):
        with mmap.mmap(
            fd, min(_WINDOW, end - start), offset=start, access=mmap.ACCESS_READ
        ) as data:
            find = data.find
            at = find(b"\n")
            while at >= 0:
                count += 1
                at = find(b"\n", at + 1)
    return count


def _fork(work: _PartJob) -> _Child:
    """A child that does ``work`` and sends back the part it returns."""
    answers, answer_to = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: leave by os._exit, never by the parent's code (or its atexit)
        status = 1
        try:
            os.close(answers)
            data = _dumps(work())
            with os.fdopen(answer_to, "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(answer_to)
    return _Child(pid, answers, work.start)


@dataclass
class _Child:
    """A forked child and the pipe its answer comes back on."""

    pid: int
    answers: int
    cut: int
    done: bool = False

    def answer(self) -> Part | None:
        """Its part, or ``None`` if it failed (then the part is checked here)."""
        with os.fdopen(self.answers, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        self.done = True
        if status != 0 or not data:
            return None
        return _loads(data)

    def stop(self) -> None:
        """Kill it if its answer was not taken (an error or Ctrl-C here, or not needed)."""
        if self.done:
            return
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        with suppress(OSError):
            os.close(self.answers)
        self.done = True


def _dumps(part: Part) -> bytes:
    """A part as bytes: its ids (most of it) by ``marshal``, about twice as fast as pickle."""
    ids = marshal.dumps((part.ids, part.id_lines))
    rest = pickle.dumps(replace(part, ids=[], id_lines=[]), protocol=pickle.HIGHEST_PROTOCOL)
    return len(ids).to_bytes(8, "little") + ids + rest


def _loads(data: bytes) -> Part:
    """The part :func:`_dumps` wrote (in a child of this process: trusted bytes)."""
    size = int.from_bytes(data[:8], "little")
    ids, id_lines = marshal.loads(data[8 : 8 + size])
    part = cast(Part, pickle.loads(data[8 + size :]))
    return replace(part, ids=ids, id_lines=id_lines)


def _reader(fd: int, start: int, end: int) -> BinaryIO:
    """Bytes ``start`` to ``end`` of the open file ``fd`` as a binary stream."""
    return cast(BinaryIO, io.BufferedReader(_Range(fd, start, end)))


class _Range(io.RawIOBase):
    """A stretch of an open file, read with ``pread``: the descriptor's own offset is never
    used, so this process and its children read one descriptor at once."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd, self._start, self._end = fd, start, end
        self._at = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._at, io.SEEK_END: self._end}[whence]
        self._at = min(max(base + offset, self._start), self._end)
        return self.tell()

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._end - self._at)
        if size <= 0:
            return 0
        view = memoryview(buffer).cast("B")[:size]
        read = (
            os.preadv(self._fd, [view], self._at)
            if _PREADV
            else _pread_into(self._fd, view, self._at)
        )
        self._at += read
        return read


_PREADV = hasattr(os, "preadv")


def _pread_into(fd: int, view: memoryview, at: int) -> int:
    data = os.pread(fd, len(view), at)
    view[: len(data)] = data
    return len(data)
