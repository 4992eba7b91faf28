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
