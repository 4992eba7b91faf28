"""The results file (JSONL and CSV), the retry lines and the answer shown in a CSV cell."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchkit.errors import UsageError
from batchkit.result_files import CSV_COLUMNS, answer_text, write_results
from batchkit.results import Result, ResultError, iter_results
from tests.helpers import request
from tests.test_results import answer, never_ran, write


def _results() -> list[Result]:
    return [
        Result("a", "succeeded", 200, {"choices": [{"message": {"content": "ok"}}]}, line=1,
               usage={"prompt_tokens": 3, "completion_tokens": 1}),
        Result("b", "failed", 429, None, ResultError("rate_limit", "slow down"), line=2),
        Result("c", "failed", 400, None, ResultError("invalid", "bad"), line=3),
        Result("d", "expired", None, None, ResultError("batch_expired", "late"), line=4),
        Result("e", "missing", line=5),
    ]  # fmt: skip


def test_jsonl_results_and_retry_lines(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "results.jsonl"
    summary, retry = write_results(_results(), dest)
    rows = [orjson.loads(line) for line in dest.read_bytes().splitlines()]
    assert [row["custom_id"] for row in rows] == ["a", "b", "c", "d", "e"]
    assert rows[1]["error"] == {"code": "rate_limit", "message": "slow down"}
    assert set(rows[0]) == {"custom_id", "status", "status_code", "body", "error", "usage", "line"}
    assert retry == [2, 4, 5]
    assert summary.retry == 3
    assert summary.to_dict()["counts"] == {
        "succeeded": 1,
        "failed": 2,
        "expired": 1,
        "cancelled": 0,
        "missing": 1,
    }
    _, retry_all = write_results(_results(), dest, retry_all=True)
    assert retry_all == [2, 3, 4, 5]


def test_csv_results_have_flat_columns_and_open_in_a_spreadsheet(tmp_path: Path) -> None:
    dest = tmp_path / "results.csv"
    write_results(_results(), dest)
    assert dest.read_bytes().startswith(b"\xef\xbb\xbf")  # the mark spreadsheets look for
    with dest.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1] == ["a", "succeeded", "200", "ok", "", "", "3", "1", "1"]
    assert rows[2][:6] == ["b", "failed", "429", "", "rate_limit", "slow down"]
    assert len(rows) == 6


def test_a_results_file_needs_a_known_extension_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.jsonl .* or \.csv"):
        write_results(_results(), tmp_path / "results.txt")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_writing_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> Any:
        yield from _results()[:2]
        raise RuntimeError("the join failed halfway")

    dest = tmp_path / "results.jsonl"
    dest.write_text("the previous results\n")
    with pytest.raises(RuntimeError):
        write_results(broken(), dest)
    assert dest.read_text() == "the previous results\n"
    assert [path.name for path in tmp_path.iterdir()] == ["results.jsonl"]


def test_include_request_carries_each_body(tmp_path: Path) -> None:
    batch_input = write(tmp_path / "in.jsonl", request("a"), request("b"))
    output = write(tmp_path / "out.jsonl", answer("b"), answer("a"))
    plain = list(iter_results(output, None, input=batch_input))
    assert all("request" not in result.to_dict() for result in plain)
    joined = list(iter_results(output, None, input=batch_input, include_request=True))
    assert [r.request for r in joined] == [request("a")["body"], request("b")["body"]]
    assert joined[0].to_dict()["request"] == request("a")["body"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"choices": [{"message": {"role": "assistant", "content": "hi"}}]}, "hi"),
        ({"choices": [{"text": "completed"}]}, "completed"),
        ({"output_text": "from responses"}, "from responses"),
        (
            {"output": [{"type": "message", "content": [{"type": "output_text", "text": "a"},
                                                          {"type": "output_text", "text": "b"}]}]},
            "ab",
        ),
        ({"data": [{"embedding": [0.1, 0.2, 0.3]}]}, "3 dimensions"),
        ({"choices": [{"message": {"content": None, "tool_calls": []}}]}, None),
        ("not an object", None),
    ],
)  # fmt: skip
def test_answer_text(body: Any, text: str | None) -> None:
    assert answer_text(body) == text


def test_the_retry_lines_of_a_join_are_the_failed_requests(tmp_path: Path) -> None:
    batch_input = write(tmp_path / "in.jsonl", *(request(f"r{n}") for n in range(1, 5)))
    output = write(tmp_path / "out.jsonl", answer("r1"), answer("r3", status=503))
    errors = write(tmp_path / "err.jsonl", never_ran("r2"))
    _, retry = write_results(iter_results(output, errors, input=batch_input), tmp_path / "r.jsonl")
    assert retry == [2, 3, 4]  # expired, 503, missing
