"""Reading a file's lines with a bound, so that memory never grows with the longest line.

Iterating over a binary file (``for raw in stream``) holds each line whole: a 300 MB file
with no newline costs 300 MB and more.  A batch line can never be longer than the file's byte
limit, so a line past that bound is reported by its length alone, and its bytes are read in
chunks and let go.

On a seekable file (the usual case) an over-long line costs one chunk of memory: the reader
first scans ahead to the line's end, and reads the line whole only when it is within the
bound.  On a pipe it cannot go back, so it holds at most ``max_line`` bytes before it gives up
on the line.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from batchkit.errors import UsageError

#: Lines up to this long (nearly all of them) are read in one call, as plain iteration would.
CHUNK = 1 << 20


def open_binary(path: str | os.PathLike[str], what: str = "a file") -> io.BufferedReader:
    """Open ``path`` for reading bytes; the usual reasons it cannot be are UsageErrors that
    name the path and ``what`` it was meant to be ("the output file")."""
    try:
        return Path(path).open("rb")
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not {what}") from None
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None


@dataclass(frozen=True)
class LongLine:
    """A line longer than the bound: only its length, line end included, was kept."""

    length: int


def read_lines(
    stream: BinaryIO, max_line: int, *, chunk: int = CHUNK
) -> Iterator[bytes | LongLine]:
    """Each line of ``stream`` (line end included), or a :class:`LongLine` past ``max_line``.

    Memory is bounded by ``max(chunk, longest line within the bound)`` on a seekable stream,
    and by ``max_line`` on one that is not.
    """
    if max_line < 1 or chunk < 1:
        raise ValueError("max_line and chunk must be positive")
    first_read = min(chunk, max_line + 1)
    readline = stream.readline
    seekable = stream.seekable()
    while True:
        raw = readline(first_read)
        if len(raw) < first_read or raw.endswith(b"\n"):
            if not raw:
                return
            # The common case: the whole line in one read (over the bound only when the
            # bound is below one chunk and the line is exactly one byte longer).
            yield raw if len(raw) <= max_line else LongLine(len(raw))
            continue
        if seekable:
            yield _long_seekable(stream, raw, max_line, chunk)
        else:
            yield _long_unseekable(stream, raw, max_line, chunk)


def _rest_of_line(stream: BinaryIO, chunk: int) -> Iterator[bytes]:
    """The pieces of the current line after what was already read, up to its line end."""
    while True:
        piece = stream.readline(chunk)
        if not piece:
            return
        yield piece
        if piece.endswith(b"\n"):
            return


def _long_seekable(stream: BinaryIO, head: bytes, max_line: int, chunk: int) -> bytes | LongLine:
    start = stream.tell() - len(head)
    length = len(head) + sum(len(piece) for piece in _rest_of_line(stream, chunk))
    if length > max_line:
        return LongLine(length)
    end = stream.tell()
    stream.seek(start)
    line = stream.read(length)
    stream.seek(end)
    return line


def _long_unseekable(stream: BinaryIO, head: bytes, max_line: int, chunk: int) -> bytes | LongLine:
    pieces = [head]
    length = len(head)
    for piece in _rest_of_line(stream, chunk):
        length += len(piece)
        if length > max_line:
            pieces.clear()  # past the bound: count the rest, keep none of it
        else:
            pieces.append(piece)
    return LongLine(length) if length > max_line else b"".join(pieces)


#: What :func:`read_blocks` reads at a time, and the most lines it yields in one block: enough
#: that a block of short lines is checked in a few calls, few enough that a block's parsed
#: records stay in the CPU's caches.
BLOCK = 1 << 16
BLOCK_LINES = 64

#: One item of :func:`read_blocks`: complete lines (line ends stripped), or one line as
#: :func:`read_lines` yields it (the last line with no line end, or one longer than a block).
BlockItem = list[bytes] | bytes | LongLine


def read_blocks(
    stream: BinaryIO, max_line: int, *, block: int = BLOCK, lines: int = BLOCK_LINES
) -> Iterator[BlockItem]:
    """The lines of ``stream`` a block at a time, with :func:`read_lines`'s bound.

    A block is a list of up to ``lines`` complete lines, each without its ``\\n`` (a ``\\r``
    before it stays), so that a caller can check many lines in one call.  A line longer than
    ``block`` bytes is read as :func:`read_lines` reads a long one (bounded by ``max_line``)
    and yielded alone, as is a last line with no line end.  When the bound is below two
    blocks, every line comes alone from :func:`read_lines` itself.
    """
    if max_line < 2 * block:
        yield from read_lines(stream, max_line)
        return
    read = stream.read
    rest = b""
    while True:
        data = read(block)
        if not data:
            if rest:
                yield rest
            return
        found = data.split(b"\n")
        if rest:  # the line the last read cut: only it is copied again
            found[0] = rest + found[0]
        rest = found.pop()
        for start in range(0, len(found), lines):
            yield found[start : start + lines]
        if not found and len(rest) >= block:  # no line end in a whole block: a long line
            yield (_long_seekable if stream.seekable() else _long_unseekable)(
                stream, rest, max_line, block
            )
            rest = b""
