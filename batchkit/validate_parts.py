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

The children's findings are taken only if the whole guess was right
(:meth:`~batchkit.validate.Validator.finish_with`): each part starts in the context and at the
line the parts before it left, and no two parts use one id.  Otherwise this process checks the
rest of the file itself, after all, as one process would.  Either way the report is one
process's, line for line (tests/test_validate_parts.py); the children only make it sooner.

Two cores are not always equally fast (on a shared machine one may run at half speed for a
while), so a child's part is not fixed: when this process has checked its own part and a child
has not answered, it asks the child for the tail of what it has left (:class:`_GivingRange`),
checks that here, and asks again until the child answers or has too little left to give.

Children are forked (no interpreter to start, nothing to import again), and only where that is
safe: where ``os.fork`` exists, not on macOS (system libraries there may not survive a fork),
and only from a process with one thread (a fork copies a lock another thread holds).
"""

from __future__ import annotations

import io
import marshal
import os
import pickle
import select
import signal
import stat
import struct
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
#: The least a child gives up to this process when asked for the tail of its part: less is
#: checked sooner where it is than asked for and counted here.
MIN_TAIL_BYTES = 512 * 1024
#: How much of the file is read at a time to count lines.
_WINDOW = 256 * 1024


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
    guess = probe.context()
    children: list[_Child] = []
    try:
        for cut, end in zip(cuts[1:], [*cuts[2:], info.st_size], strict=True):
            job = _PartJob(fd, cut, end, guess, endpoint, limits, path, max_issues)
            children.append(_fork(job))
        _check_range(main, fd, 0, cuts[1])
        pieces = [piece for child in children for piece in child.parts()]
        report = None if None in pieces else main.finish_with(cast(list[Part], pieces))
    finally:
        for child in children:  # (each has exited by now, unless it was killed)
            child.stop()
    if report is None:  # the guess was wrong: the rest is checked as one process would
        _check_range(main, fd, cuts[1], info.st_size)
        report = main.finish()
    return report


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
        cut = _line_start_after(fd, at, size)
        if cut is not None and cut > cuts[-1]:
            cuts.append(cut)
    return cuts


def _line_start_after(fd: int, at: int, end: int) -> int | None:
    """Just after the first line end at or past ``at`` (looked for :data:`_SEARCH` bytes on),
    when that is before ``end``; else ``None``."""
    if at >= end:
        return None
    found = os.pread(fd, min(_SEARCH, end - at), at).find(b"\n")
    start = at + found + 1
    return start if found >= 0 and start < end else None


def _check_range(validator: Validator, fd: int, start: int, end: int) -> None:
    _feed(validator, _Range(fd, start, end))


def _feed(validator: Validator, stretch: _Range) -> None:
    """Check the lines of ``stretch`` with ``validator``."""
    stream = cast(BinaryIO, io.BufferedReader(stretch))
    validator.feed_items(read_blocks(stream, validator.limits.max_bytes))


@dataclass(frozen=True)
class _PartJob:
    """Checking the part from ``start`` to ``end`` of a file on its own, from the guess in the
    module's note."""

    fd: int
    start: int
    end: int
    context: Context
    endpoint: str | None
    limits: Limits | None
    path: str
    max_issues: int

    def check(self, line: int, stretch: _Range | None = None) -> Part:
        """What the part's lines report when ``line`` lines come before it; ``stretch``, a
        reader of it whose end may move (a child's), else its bytes as they are."""
        validator = Validator(
            self.endpoint, self.limits, path=self.path, max_issues=self.max_issues
        )
        validator.resume(self.context, line)
        _feed(validator, stretch or _Range(self.fd, self.start, self.end))
        return validator.part(self.context, line)

    def tail(self, start: int, end: int) -> _PartJob:
        """The same work for the stretch from ``start`` to ``end`` of this part."""
        return replace(self, start=start, end=end)


def _count_lines(fd: int, start: int, end: int) -> int:
    """The line ends from offset ``start`` to ``end``, read a window at a time.

    Counted as the bytes a window loses when its line ends are taken out: ``replace`` finds
    them with a vectorised search, more than twice as fast as ``bytes.count`` (measured:
    0.8 ms against 2.0 ms for 6 MB of 200-byte lines).
    """
    count = 0
    for at in range(start, end, _WINDOW):
        window = os.pread(fd, min(_WINDOW, end - at), at)
        count += len(window) - len(window.replace(b"\n", b""))
    return count


def _fork(job: _PartJob) -> _Child:
    """A child that checks ``job``'s part, gives its tail to this process when asked
    (:class:`_GivingRange`), and sends back the part it checked."""
    answers, answer_to = os.pipe()
    asked, asks = os.pipe()  # (read end, write end), as each below
    offers, offer_to = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: leave by os._exit, never by the parent's code (or its atexit)
        status = 1
        try:
            for end in (answers, asks, offers):
                os.close(end)
            line = _count_lines(job.fd, 0, job.start)
            stretch = _GivingRange(job.fd, job.start, job.end, line, asked, offer_to)
            data = _dumps(job.check(line, stretch))
            with os.fdopen(answer_to, "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)
    for end in (answer_to, asked, offer_to):
        os.close(end)
    return _Child(pid, job, answers, asks, offers)


@dataclass
class _Child:
    """A forked child checking ``job``'s part, and the pipes to it: its answer comes back on
    ``answers``; a request for its tail goes on ``asks``, and the child's offer comes back on
    ``offers``."""

    pid: int
    job: _PartJob
    answers: int
    asks: int
    offers: int
    answered: bool = False
    reaped: bool = False

    def parts(self) -> list[Part | None]:
        """What the child's part reports, in pieces in file order: the child's answer
        (``None`` if it failed), then the tails checked here while it worked."""
        tails: list[Part] = []
        end = self.job.end
        while not self._answered():
            offer = self._ask()
            if offer is None:
                break
            start, child_line = offer
            line = child_line + _count_lines(self.job.fd, self.job.start, start)
            tails.append(self.job.tail(start, end).check(line))
            end = start
        return [self.answer(), *reversed(tails)]

    def _answered(self) -> bool:
        return bool(select.select([self.answers], [], [], 0)[0])

    def _ask(self) -> tuple[int, int] | None:
        """The tail the child gives up: where it starts and the line the child started at;
        ``None`` when it has none left worth taking (or has finished, or failed)."""
        try:
            os.write(self.asks, b"?")
            offer = os.read(self.offers, _OFFER.size)
        except BrokenPipeError:  # the child has finished reading
            return None
        if len(offer) < _OFFER.size:  # it finished, or failed, before it answered
            return None
        start, line = _OFFER.unpack(offer)
        return (start, line) if start else None

    def answer(self) -> Part | None:
        """Its part, or ``None`` if it failed (then the part is checked here).  A child that
        answered has nothing left to do but exit; it is reaped by :meth:`stop`, later, so
        that its exit is not waited for here (measured: 2 to 3 ms)."""
        with os.fdopen(self.answers, "rb") as pipe:
            self.answers = -1  # closed with ``pipe`` (its number may be given out again)
            data = pipe.read()
        self.answered = True
        return _loads(data)

    def stop(self) -> None:
        """Reap it; first kill it if it did not answer (an error or Ctrl-C here, or its
        answer was not needed)."""
        if self.reaped:
            return
        if not self.answered:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.answers >= 0:
            os.close(self.answers)
        os.waitpid(self.pid, 0)
        for end in (self.asks, self.offers):
            with suppress(OSError):
                os.close(end)
        self.reaped = True


#: A child's offer: where the tail it gives up starts (0: no tail), and its first line.
_OFFER = struct.Struct("<qq")


def _dumps(part: Part) -> bytes:
    """A part as bytes, after their count: its ids (most of it) by ``marshal``, about twice
    as fast as pickle."""
    ids = marshal.dumps(part.ids)
    rest = pickle.dumps(replace(part, ids=[]), protocol=pickle.HIGHEST_PROTOCOL)
    return _SIZES.pack(len(ids), len(rest)) + ids + rest


def _loads(data: bytes) -> Part | None:
    """The part :func:`_dumps` wrote (in a child of this process: trusted bytes), or
    ``None`` if the child did not write it all (it was killed, say)."""
    if len(data) < _SIZES.size:
        return None
    ids_size, rest_size = _SIZES.unpack_from(data)
    if len(data) != _SIZES.size + ids_size + rest_size:
        return None
    rest_at = _SIZES.size + ids_size
    part = cast(Part, pickle.loads(data[rest_at:]))
    return replace(part, ids=marshal.loads(data[_SIZES.size : rest_at]))


_SIZES = struct.Struct("<qq")


class _Range(io.RawIOBase):
    """A stretch of an open file, read with ``pread``: the descriptor's own offset is never
    used, so this process and its children read one descriptor at once."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd, self._start = fd, start
        #: Where the stretch ends (a child's may move closer: :class:`_GivingRange`).
        self.end = end
        self._at = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._at, io.SEEK_END: self.end}[whence]
        self._at = min(max(base + offset, self._start), self.end)
        return self.tell()

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self.end - self._at)
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


class _GivingRange(_Range):
    """A child's part, which gives its tail to the parent when asked: before each read it
    looks for a request on ``asked`` and answers on ``offer_to`` with where the tail starts
    (a line start about halfway between what it has read and its end, which becomes its new
    end), or 0 when less than :data:`MIN_TAIL_BYTES` is left.  It stops answering once it has
    read its last byte, so that the parent never waits on a child with no more reads to
    make."""

    def __init__(self, fd: int, start: int, end: int, line: int, asked: int, offer_to: int):
        super().__init__(fd, start, end)
        self._line = line
        self._asked: int | None = asked
        self._offer_to = offer_to
        os.set_blocking(asked, False)

    def readinto(self, buffer: Any) -> int:
        if self._asked is not None:
            self._answer()
        read = super().readinto(buffer)
        if read == 0:
            self._stop_answering()
        return read

    def _answer(self) -> None:
        assert self._asked is not None
        try:
            request = os.read(self._asked, 1)
        except BlockingIOError:
            return
        if not request:  # the parent closed its end: it asks no more
            return
        tail = self._tail_start()
        os.write(self._offer_to, _OFFER.pack(tail, self._line))
        if tail:
            self.end = tail

    def _tail_start(self) -> int:
        """A line start about halfway through what is left, or 0 if too little is left."""
        if self.end - self._at < MIN_TAIL_BYTES:
            return 0
        return _line_start_after(self._fd, (self._at + self.end) // 2, self.end) or 0

    def _stop_answering(self) -> None:
        """No more offers: a request from now on finds the offers' pipe closed.  (The
        requests' end stays open, so that asking never raises SIGPIPE in the parent.)"""
        if self._asked is not None:
            os.close(self._offer_to)
            self._asked = None
