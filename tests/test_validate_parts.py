"""One file validated in parts by forked children (batchkit/validate_parts.py): the report is
the one process gives, line for line, wherever the cuts fall and whatever the guess missed."""

from __future__ import annotations

import io
import mmap
import os
import random
import tempfile
import threading
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
from batchkit.validate import FileReport, Validator, validate_file
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
    """Parts start at 0 and at ``starts``; yields the answers of ``Validator.join``."""
    joined: list[bool] = []
    real_join = Validator.join

    def join(self: Validator, part: object) -> bool:
        joined.append(real_join(self, part))  # type: ignore[arg-type]
        return joined[-1]

    with (
        mock.patch.object(parts_module, "_cuts", lambda fd, size, parts: [0, *starts]),
        mock.patch.object(Validator, "join", join),
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
    assert joined == [True, True]  # each child's answer was taken, none checked again here
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
    assert joined == [True, False]  # the middle part's ids were kept: the last's repeat shows
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
    with mock.patch.object(parts_module, "_count_lines", lambda fd, end: real(fd, end) + 1):
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
        assert joined == [True, True]
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

    def fail(self: object) -> None:
        raise RuntimeError("a child that dies")

    with mock.patch.object(parts_module._PartJob, "__call__", fail):
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


def test_lines_are_counted_across_the_mapped_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts_module, "_WINDOW", mmap.ALLOCATIONGRANULARITY)
    data = b"".join(b"x" * (n % 97) + b"\n" for n in range(3000))
    path = write(tmp_path, data)
    fd = os.open(path, os.O_RDONLY)
    try:
        ends = [0, 1, *range(mmap.ALLOCATIONGRANULARITY - 2, len(data), 4093), len(data)]
        for end in ends:
            assert parts_module._count_lines(fd, end) == data[:end].count(b"\n"), end
    finally:
        os.close(fd)
