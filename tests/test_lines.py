"""The bounded line reader: the same lines as plain iteration, and no line held past the bound."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchkit.lines import LongLine, read_lines


class _Pipe(io.RawIOBase):
    """A raw stream that cannot seek, as stdin from a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 7))  # short reads, as pipes give
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _streams(tmp_path: Path, data: bytes) -> Iterator[io.BufferedReader]:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(data)
    with path.open("rb") as seekable:
        yield seekable
    yield io.BufferedReader(_Pipe(data))


def _expected(data: bytes, max_line: int) -> list[bytes | LongLine]:
    lines = io.BytesIO(data).readlines()
    return [line if len(line) <= max_line else LongLine(len(line)) for line in lines]


@pytest.mark.parametrize("chunk", [1, 4, 16, 1 << 20])
def test_long_lines_become_their_length_and_the_rest_is_intact(tmp_path: Path, chunk: int) -> None:
    data = b"short\n" + b"x" * 100 + b"\n" + b"y" * 40 + b"\n" + b"tail without newline"
    for stream in _streams(tmp_path, data):
        got = list(read_lines(stream, 50, chunk=chunk))
        assert got == [b"short\n", LongLine(101), b"y" * 40 + b"\n", b"tail without newline"]


def test_a_line_of_exactly_the_bound_is_kept_and_one_byte_more_is_not(tmp_path: Path) -> None:
    data = b"a" * 9 + b"\n" + b"b" * 10 + b"\n"
    for stream in _streams(tmp_path, data):
        assert list(read_lines(stream, 10, chunk=4)) == [b"a" * 9 + b"\n", LongLine(11)]
    for stream in _streams(tmp_path, data):  # the bound below one chunk: the same verdicts
        assert list(read_lines(stream, 10, chunk=1 << 20)) == [b"a" * 9 + b"\n", LongLine(11)]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    last_newline=st.booleans(),
    max_line=st.integers(1, 30),
    chunk=st.integers(1, 12),
)
def test_matches_plain_iteration(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    last_newline: bool,
    max_line: int,
    chunk: int,
) -> None:
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    for stream in _streams(tmp_path_factory.mktemp("p"), data):
        assert list(read_lines(stream, max_line, chunk=chunk)) == _expected(data, max_line)


def test_an_over_long_line_is_not_held(tmp_path: Path) -> None:
    """64 MiB in one line, read with a 1 MiB chunk: no piece handed out is over a chunk."""
    path = tmp_path / "one-line.jsonl"
    with path.open("wb") as out:
        out.truncate(64 << 20)  # sparse: costs no disk
    with path.open("rb") as stream:
        reads: list[int] = []
        original = stream.readline

        def counting_readline(size: int = -1) -> bytes:
            piece = original(size)
            reads.append(len(piece))
            return piece

        stream.readline = counting_readline  # type: ignore[method-assign]
        assert list(read_lines(stream, 1 << 20)) == [LongLine(64 << 20)]
    assert max(reads) <= 1 << 20
    assert os.path.getsize(path) == 64 << 20


def test_rejects_a_non_positive_bound() -> None:
    with pytest.raises(ValueError):
        list(read_lines(io.BytesIO(b"x\n"), 0))
