"""One file validated in parts by forked children (batchkit/validate_parts.py): the report is
the one process gives, line for line, wherever the cuts fall and whatever the guess missed."""

from __future__ import annotations

import io
import os
import random
import select
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchkit import validate_parts as parts_module
from batchkit.errors import UsageError
from batchkit.limits import Limits
from batchkit.validate import FileReport, Part, Validator, validate_file
from tests.helpers import chat_body, request
from tests.test_validate_cli import run as run_cli
from tests.test_validate_fuzz import (
    _DETERMINISTIC,
    mixed_files,
    mostly_valid_files,
    mutated_files,
)


def line_starts(data: bytes) -> list[int]:
    """Where each line after the first starts."""
    return [at + 1 for at in range(len(data) - 1) if data[at] == 10]


@contextmanager
def cut_at(starts: Sequence[int]) -> Iterator[list[bool]]:
    """Parts start at 0 and at ``starts``; yields whether ``Validator.finish_with`` took the
    children's parts (empty if it was not asked: a child failed)."""
    joined: list[bool] = []
    real_finish_with = Validator.finish_with

    def finish_with(self: Validator, parts: list[Part]) -> FileReport | None:
        report = real_finish_with(self, parts)
        joined.append(report is not None)
        return report

    with (
        mock.patch.object(parts_module, "_cuts", lambda fd, size, parts: [0, *starts]),
        mock.patch.object(Validator, "finish_with", finish_with),
    ):
        yield joined


def in_parts(path: Path, starts: Sequence[int], **options: object) -> tuple[FileReport, list[bool]]:
    with cut_at(starts) as joined:
        report = validate_file(path, jobs=len(starts) + 1, **options)  # type: ignore[arg-type]
    return report, joined


#: Every child forked while a test runs (the test run has children of its own: servers).
FORKED: list[int] = []
_real_fork = os.fork


def _recording_fork() -> int:
    pid = _real_fork()
    if pid:
        FORKED.append(pid)
    return pid


@pytest.fixture(autouse=True)
def record_forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    FORKED.clear()
    monkeypatch.setattr(os, "fork", _recording_fork)
    yield


def assert_no_children_left(*, forked: bool = True) -> None:
    """Each child forked was waited for (a child not yet reaped would still be found)."""
    assert FORKED or not forked
    for pid in FORKED:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def write(tmp: Path, data: bytes) -> Path:
    path = tmp / "batch.jsonl"
    path.write_bytes(data)
    return path


def lines(*records: object) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def body(text: str, **extra: object) -> dict[str, object]:
    return chat_body(messages=[{"role": "user", "content": text}], **extra)


def valid(count: int, first: int = 0) -> list[object]:
    return [request(f"id-{n}", body(f"q{n}")) for n in range(first, first + count)]


# -- the property -----------------------------------------------------------------------------


@settings(_DETERMINISTIC, max_examples=150)
@given(st.one_of(mostly_valid_files(), mutated_files(), mixed_files()), st.randoms())
def test_parts_report_exactly_what_one_process_reports(data: bytes, chance: random.Random) -> None:
    starts = line_starts(data)
    picked = sorted(chance.sample(starts, min(len(starts), chance.randint(1, 3)))) if starts else []
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), data)
        expected = validate_file(path, jobs=1)
        assert in_parts(path, picked)[0] == expected
        assert in_parts(path, picked, max_issues=2)[0] == validate_file(path, jobs=1, max_issues=2)
    assert_no_children_left(forked=False)


def test_a_clean_file_is_answered_by_its_parts(tmp_path: Path) -> None:
    data = lines(*valid(300))
    path = write(tmp_path, data)
    starts = line_starts(data)
    report, joined = in_parts(path, [starts[99], starts[199]])
    assert joined == [True]  # the children's answers were taken, none checked again here
    assert report == validate_file(path, jobs=1)
    assert report.valid and report.requests == 300


# -- where the guess is wrong -----------------------------------------------------------------


def test_an_id_used_in_an_earlier_part_is_reported_with_its_first_line(tmp_path: Path) -> None:
    records = valid(20)
    records[15] = request("id-3", body("again"))
    data = lines(*records)
    path = write(tmp_path, data)
    report, joined = in_parts(path, [line_starts(data)[9]])
    assert joined == [False]  # the child could not know id-3: its part is checked here
    assert report == validate_file(path, jobs=1)
    (issue,) = report.errors
    assert (issue.line, issue.code) == (16, "duplicate_custom_id")
    assert "line 4" in issue.message


def test_an_id_of_a_middle_part_used_again_in_the_last(tmp_path: Path) -> None:
    records = valid(30)
    records[25] = request("id-15", body("again"))
    data = lines(*records)
    path = write(tmp_path, data)
    starts = line_starts(data)
    report, joined = in_parts(path, [starts[9], starts[19]])
    assert joined == [False]  # two parts used id-15: the rest is checked here
    assert report == validate_file(path, jobs=1)
    (issue,) = report.errors
    assert (issue.line, issue.code) == (26, "duplicate_custom_id")
    assert "line 16" in issue.message


def test_a_file_that_sets_its_endpoint_and_model_after_line_one(tmp_path: Path) -> None:
    data = b'{"custom_id": broken\n' + lines(*valid(10))
    path = write(tmp_path, data)
    report, joined = in_parts(path, [line_starts(data)[5]])
    assert joined == [False]  # line 1 left no endpoint: the guess was wrong
    assert report == validate_file(path, jobs=1)
    assert [issue.line for issue in report.errors] == [1]


def test_a_model_changed_in_a_later_part_names_line_one(tmp_path: Path) -> None:
    records = valid(10)
    other = body("x", model="gpt-4o")
    records[8] = request("id-8", other)
    data = lines(*records)
    path = write(tmp_path, data)
    report, joined = in_parts(path, [line_starts(data)[4]])
    assert joined == [True]
    assert report == validate_file(path, jobs=1)
    (issue,) = report.errors
    assert (issue.line, issue.code) == (9, "model_mismatch")
    assert "line 1 uses" in issue.message


def test_a_wrong_count_of_the_lines_before_a_part_is_not_taken(tmp_path: Path) -> None:
    data = lines(*valid(10))
    path = write(tmp_path, data)
    real = parts_module._count_lines
    with mock.patch.object(parts_module, "_count_lines", lambda *place: real(*place) + 1):
        report, joined = in_parts(path, [line_starts(data)[4]])
    assert joined == [False]
    assert report == validate_file(path, jobs=1)


def test_issues_past_the_cap_are_counted_across_parts(tmp_path: Path) -> None:
    records: list[object] = valid(40)
    for at in range(1, 40, 3):
        records[at] = {"custom_id": f"bad-{at}", "method": "GET", "url": "/v1/chat/completions"}
    data = lines(*records)
    path = write(tmp_path, data)
    starts = line_starts(data)
    for cap in (1, 5, 13, 100):
        report, joined = in_parts(path, [starts[10], starts[25]], max_issues=cap)
        assert joined == [True]
        assert report == validate_file(path, jobs=1, max_issues=cap)
        assert len(report.errors) == min(cap, report.errors_total)


def test_odd_lines_at_and_after_the_cuts(tmp_path: Path) -> None:
    long_body = body("x" * 70_000)  # longer than a block: read alone
    data = (
        b"\xef\xbb\xbf"
        + lines(*valid(3))
        + b"\n"  # a blank line
        + orjson.dumps(request("crlf", body("y")))
        + b"\r\n"
        + lines(request("long", long_body))
        + lines(*valid(3, first=10))
        + orjson.dumps(request("last", body("z")))  # no line end
    )
    path = write(tmp_path, data)
    expected = validate_file(path, jobs=1)
    codes = {issue.code for issue in expected.errors + expected.warnings}
    assert {"byte_order_mark", "blank_line"} <= codes
    for start in line_starts(data):
        assert in_parts(path, [start])[0] == expected, start


def test_a_line_over_the_file_limit_inside_a_part(tmp_path: Path) -> None:
    data = lines(*valid(4)) + b'{"x": "' + b"y" * 300_000 + b'"}\n' + lines(*valid(4, first=4))
    path = write(tmp_path, data)
    limits = Limits(max_bytes=200_000)
    report, _ = in_parts(path, [line_starts(data)[2]], limits=limits)
    assert report == validate_file(path, jobs=1, limits=limits)
    assert any(issue.code == "file_too_large" and issue.line == 5 for issue in report.errors)


# -- processes --------------------------------------------------------------------------------


def test_a_child_that_fails_leaves_its_part_to_this_process(tmp_path: Path) -> None:
    data = lines(*valid(20))
    path = write(tmp_path, data)

    def fail(self: object, *args: object) -> None:
        raise RuntimeError("a child that dies")

    with mock.patch.object(parts_module._PartJob, "check", fail):
        report, joined = in_parts(path, [line_starts(data)[9]])
    assert joined == []  # no answer to join
    assert report == validate_file(path, jobs=1)
    assert_no_children_left()


def test_ctrl_c_here_stops_the_children(tmp_path: Path) -> None:
    data = lines(*valid(20))
    path = write(tmp_path, data)
    parent = os.getpid()
    real = parts_module._check_range

    def interrupted(validator: Validator, fd: int, start: int, end: int) -> None:
        if os.getpid() == parent:
            raise KeyboardInterrupt
        real(validator, fd, start, end)

    with (
        mock.patch.object(parts_module, "_check_range", interrupted),
        pytest.raises(KeyboardInterrupt),
    ):
        in_parts(path, [line_starts(data)[5], line_starts(data)[12]])
    assert_no_children_left()


# -- a slow child gives the tail of its part to this process ----------------------------------


@contextmanager
def slow_children(monkeypatch: pytest.MonkeyPatch, pause: float = 0.02) -> Iterator[list[int]]:
    """Children that pause before each read (a core at a fraction of the other's speed), and
    give up tails of any size; yields where each tail taken here starts."""
    parent = os.getpid()
    real_read = parts_module._GivingRange.readinto
    real_tail = parts_module._PartJob.tail
    tails: list[int] = []

    def slow_read(self: parts_module._GivingRange, buffer: object) -> int:
        if os.getpid() != parent:
            time.sleep(pause)
        return real_read(self, buffer)

    def tail(self: parts_module._PartJob, start: int, end: int) -> parts_module._PartJob:
        tails.append(start)
        return real_tail(self, start, end)

    monkeypatch.setattr(parts_module, "MIN_TAIL_BYTES", 2048)
    monkeypatch.setattr(parts_module._GivingRange, "readinto", slow_read)
    monkeypatch.setattr(parts_module._PartJob, "tail", tail)
    yield tails


def many_lines(count: int, bad_every: int = 0) -> list[object]:
    """``count`` valid requests, but for every ``bad_every``-th (none if 0), out of range."""
    records = valid(count)
    if bad_every:
        for at in range(bad_every - 1, count, bad_every):
            records[at] = request(f"bad-{at}", body("x", temperature=9))
    return records


def test_a_slow_childs_tail_is_checked_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = lines(*many_lines(6000))  # about 900 KB: the child's part is read in 64 KB blocks
    path = write(tmp_path, data)
    expected = validate_file(path, jobs=1)
    with slow_children(monkeypatch) as tails:
        report, joined = in_parts(path, [line_starts(data)[999]])
    assert len(tails) >= 2, tails  # asked again after the first tail: the child was still slow
    assert tails == sorted(tails, reverse=True)  # each tail ends where the one before starts
    assert set(tails) <= set(line_starts(data))  # each starts a line
    assert joined == [True]
    assert report == expected and report.valid
    assert_no_children_left()


@pytest.mark.parametrize("cap", [3, 40, 1000])
def test_issues_in_the_tails_are_reported_in_order_and_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    data = lines(*many_lines(6000, bad_every=97))
    path = write(tmp_path, data)
    expected = validate_file(path, jobs=1, max_issues=cap)
    with slow_children(monkeypatch) as tails:
        report, joined = in_parts(
            path, [line_starts(data)[999], line_starts(data)[2999]], max_issues=cap
        )
    assert tails and joined == [True]
    assert report == expected
    assert report.errors_total == 6000 // 97


def test_an_id_of_a_childs_part_used_again_in_its_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = many_lines(6000)
    records[5990] = request("id-1500", body("again"))  # the child checks line 1501
    data = lines(*records)
    path = write(tmp_path, data)
    with slow_children(monkeypatch) as tails:
        report, joined = in_parts(path, [line_starts(data)[999]])
    assert tails and tails[0] < line_starts(data)[5989]  # line 5991 was in a tail
    assert joined == [False]  # so the rest of the file was checked here
    assert report == validate_file(path, jobs=1)
    (issue,) = report.errors
    assert (issue.line, issue.code) == (5991, "duplicate_custom_id")
    assert "line 1501" in issue.message


def test_a_child_offers_a_line_start_halfway_through_what_it_has_left(tmp_path: Path) -> None:
    data = b"".join(b"%d\n" % (n * n) for n in range(200_000))  # 2.3 MB
    path = write(tmp_path, data)
    fd = os.open(path, os.O_RDONLY)
    asked, asks = os.pipe()
    offers, offer_to = os.pipe()
    try:
        stretch = parts_module._GivingRange(fd, 100, len(data), 7, asked, offer_to)
        stretch.seek(50_000)
        os.write(asks, b"?")
        assert stretch.readinto(bytearray(10)) == 10
        start, line = parts_module._OFFER.unpack(os.read(offers, 16))
        assert line == 7
        assert data[start - 1] == 10 and 0 <= start - (50_000 + 100 + len(data)) // 2 < 20
        assert stretch.end == start  # what it offered is no longer its to read
        stretch.seek(start - 1000 - 100)
        os.write(asks, b"?")  # 1000 bytes (about 90 lines) left: too little to give
        assert stretch.readinto(bytearray(995)) == 995
        assert parts_module._OFFER.unpack(os.read(offers, 16)) == (0, 7)
        assert stretch.end == start
        assert stretch.readinto(bytearray(100)) == 5  # up to the tail, not past it
        assert stretch.readinto(bytearray(10)) == 0
        os.write(asks, b"?")  # after its last byte it stops answering: the pipe is closed
        assert select.select([offers], [], [], 10)[0], "no offer and no end: a parent would wait"
        assert os.read(offers, 16) == b""
    finally:
        for end in (fd, asked, asks, offers):
            os.close(end)


def test_no_fork_from_a_process_with_other_threads() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert parts_module.planned_parts(1 << 30, 2) == 1
    finally:
        stop.set()
        thread.join()
    assert parts_module.planned_parts(1 << 30, 2) == 2


def test_batchkit_chooses_parts_by_size_and_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    minimum = parts_module.MIN_PART_BYTES
    monkeypatch.setattr(parts_module, "usable_cores", lambda: 2)
    assert parts_module.planned_parts(2 * minimum - 1, None) == 1
    assert parts_module.planned_parts(2 * minimum, None) == 2
    assert parts_module.planned_parts(100 * minimum, None) == 2
    monkeypatch.setattr(parts_module, "usable_cores", lambda: 16)
    assert parts_module.planned_parts(100 * minimum, None) == parts_module.MAX_AUTO_JOBS
    assert parts_module.planned_parts(10, 3) == 3
    assert parts_module.planned_parts(2, 3) == 2  # no more parts than bytes
    with pytest.raises(ValueError, match="jobs"):
        parts_module.planned_parts(10, 0)


def test_jobs_below_one_is_a_usage_error_for_every_source(tmp_path: Path) -> None:
    path = write(tmp_path, lines(*valid(2)))
    for source in (path, io.BytesIO(path.read_bytes())):
        with pytest.raises(UsageError, match="jobs must be 1 or more"):
            validate_file(source, jobs=0)  # type: ignore[arg-type]


def test_streams_and_stdin_are_checked_in_one_process(tmp_path: Path) -> None:
    data = lines(*valid(5))
    path = write(tmp_path, data)
    with (
        mock.patch.object(os, "fork", side_effect=AssertionError("forked")),
        path.open("rb") as stream,
    ):
        assert validate_file(stream, jobs=2).valid


def test_the_cli_gives_the_same_report_with_any_jobs(tmp_path: Path) -> None:
    records = valid(30)
    records[20] = request("id-2", body("x", stream=True))
    path = write(tmp_path, lines(*records))
    outputs = {
        jobs: run_cli("validate", "--format", "json", "--jobs", jobs, str(path))
        for jobs in ("1", "2", "3")
    }
    assert {result.returncode for result in outputs.values()} == {1}
    assert outputs["2"].stdout == outputs["1"].stdout == outputs["3"].stdout
    bad = run_cli("validate", "--jobs", "0", str(path))
    assert bad.returncode == 2
    assert "--jobs" in bad.stderr and "Traceback" not in bad.stderr


def test_lines_are_counted_across_the_windows_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts_module, "_WINDOW", 4096)
    data = b"".join(b"x" * (n % 97) + b"\n" for n in range(3000))
    path = write(tmp_path, data)
    fd = os.open(path, os.O_RDONLY)
    try:
        places = [0, 1, *range(4094, len(data), 4093), len(data)]
        for start in (0, 1, 4095, 4097):
            for end in places:
                if end >= start:
                    expected = data[start:end].count(b"\n")
                    assert parts_module._count_lines(fd, start, end) == expected, (start, end)
    finally:
        os.close(fd)
