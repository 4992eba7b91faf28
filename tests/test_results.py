"""Joining a batch's output and error files to its requests (batchkit.results).

The files here are written the way real servers write them (CONTRACT.md section 6): OpenAI's
shapes, llama-stack's (``response.body`` a JSON string, error lines with ``type`` and no
``response``), out of input order, with and without a trailing newline.
"""

from __future__ import annotations

import io
import random
import tracemalloc
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batchkit.results as results_module
from batchkit.errors import InvalidInputError, UsageError
from batchkit.lines import LongLine
from batchkit.result_files import Summary, write_retry_file
from batchkit.results import (
    Result,
    iter_results,
    parse_result_line,
    should_retry,
)
from tests.helpers import jsonl, request


def answer(custom_id: str, text: str = "hi", status: int = 200, **usage: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": usage or {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    if status >= 400:
        body = {"error": {"message": "Rate limit", "type": "rate_limit", "code": "rate_limit"}}
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": "r", "body": body},
        "error": None,
    }


def never_ran(custom_id: str, code: str = "batch_expired") -> dict[str, Any]:
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": "This request could not be executed."},
    }


def write(path: Path, *records: Any) -> Path:
    path.write_bytes(jsonl(*records))
    return path


@pytest.fixture
def batch_input(tmp_path: Path) -> Path:
    return write(tmp_path / "in.jsonl", *(request(f"req-{n}") for n in range(1, 7)))


def test_input_order_every_request_once_with_its_status(tmp_path: Path, batch_input: Path) -> None:
    output = write(
        tmp_path / "out.jsonl",
        answer("req-4", "four"),
        answer("req-1", "one"),
        answer("req-3", status=429),
        answer("req-6", status=400),
    )
    errors = write(tmp_path / "err.jsonl", never_ran("req-5"))
    join = iter_results(output, errors, input=batch_input)
    results = list(join)
    assert [(r.custom_id, r.status, r.line) for r in results] == [
        ("req-1", "succeeded", 1),
        ("req-2", "missing", 2),
        ("req-3", "failed", 3),
        ("req-4", "succeeded", 4),
        ("req-5", "expired", 5),
        ("req-6", "failed", 6),
    ]
    assert results[0].body["choices"][0]["message"]["content"] == "one"
    assert results[3].body["choices"][0]["message"]["content"] == "four"
    assert results[2].status_code == 429 and results[2].error is not None
    assert results[2].error.code == "rate_limit"
    assert results[4].error is not None and results[4].error.code == "batch_expired"
    assert join.problems == []
    assert [r.custom_id for r in results if should_retry(r)] == ["req-2", "req-3", "req-5"]
    assert [r.custom_id for r in results if should_retry(r, retry_all=True)] == [
        "req-2",
        "req-3",
        "req-5",
        "req-6",
    ]


def test_without_input_each_file_in_its_order(tmp_path: Path) -> None:
    output = write(tmp_path / "out.jsonl", answer("b"), answer("a"))
    errors = write(tmp_path / "err.jsonl", never_ran("c", "batch_cancelled"))
    results = list(iter_results(output, errors))
    assert [(r.custom_id, r.status, r.line) for r in results] == [
        ("b", "succeeded", None),
        ("a", "succeeded", None),
        ("c", "cancelled", None),
    ]


def test_llama_stack_shapes(tmp_path: Path, batch_input: Path) -> None:
    """``response.body`` as a JSON string, success lines with no ``error`` key, a failed
    line with ``type`` and no ``code`` nor ``response``, no newline at the end."""
    body = {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 2}}
    success = {
        "id": "1",
        "custom_id": "req-1",
        "response": {"status_code": 200, "body": orjson.dumps(body).decode()},
    }
    failed = {"id": "2", "custom_id": "req-2", "error": {"type": "request_failed", "message": "x"}}
    output = tmp_path / "out.jsonl"
    output.write_bytes(orjson.dumps(success))  # no newline
    errors = tmp_path / "err.jsonl"
    errors.write_bytes(orjson.dumps(failed))
    results = {r.custom_id: r for r in iter_results(output, errors, input=batch_input)}
    assert results["req-1"].status == "succeeded"
    assert results["req-1"].body == body and results["req-1"].usage == {"prompt_tokens": 2}
    assert results["req-2"].status == "failed"
    assert results["req-2"].error is not None
    assert results["req-2"].error.code == "request_failed"
    assert should_retry(results["req-2"])  # no HTTP status: it never reached the model
    assert {r.status for r in results.values()} == {"succeeded", "failed", "missing"}


def test_no_output_file_and_empty_error_file(tmp_path: Path, batch_input: Path) -> None:
    errors = tmp_path / "err.jsonl"
    errors.write_bytes(b"")
    results = list(iter_results(None, errors, input=batch_input))
    assert [r.status for r in results] == ["missing"] * 6


def test_unknown_and_duplicate_custom_ids_are_reported_not_dropped_or_doubled(
    tmp_path: Path, batch_input: Path
) -> None:
    output = write(
        tmp_path / "out.jsonl",
        answer("req-1", "first"),
        answer("stranger"),
        answer("req-1", "second"),
    )
    join = iter_results(output, None, input=batch_input)
    results = list(join)
    ids = [r.custom_id for r in results]
    assert ids.count("req-1") == 1 and ids.count("stranger") == 1 and len(ids) == 7
    assert results[0].body["choices"][0]["message"]["content"] == "first"
    stranger = next(r for r in results if r.custom_id == "stranger")
    assert stranger.line is None
    codes = {(p.code, p.line) for p in join.problems}
    assert codes == {("duplicate_result", 3), ("unknown_custom_id", 2)}


def test_bad_lines_are_problems_and_a_file_of_none_is_an_error(
    tmp_path: Path, batch_input: Path
) -> None:
    output = write(tmp_path / "out.jsonl", answer("req-1"), b"not json", {"id": "x"})
    join = iter_results(output, None, input=batch_input)
    statuses = [r.status for r in join]  # to the end: the problems fill up meanwhile
    assert statuses == ["succeeded", *["missing"] * 5]
    assert [(p.code, p.line) for p in join.problems] == [
        ("invalid_json_line", 2),
        ("missing_custom_id", 3),
    ]
    html = tmp_path / "page.jsonl"
    html.write_bytes(b"<html>\n<body>Bad gateway</body>\n")
    with pytest.raises(InvalidInputError, match="not a batch results file"):
        list(iter_results(html, None, input=batch_input))
    with pytest.raises(UsageError, match="no such file"):
        iter_results(tmp_path / "nope.jsonl")


def test_a_custom_id_also_used_inside_a_body_is_joined_by_the_top_level_key(
    tmp_path: Path, batch_input: Path
) -> None:
    echo = answer("req-2")
    echo["response"]["body"]["custom_id"] = "req-1"  # a body that echoes another id...
    tricky = {"response": echo["response"], "custom_id": "req-2"}  # ...before the real key
    nested_only = {"response": {"status_code": 200, "body": {"custom_id": "req-3"}}}
    quoted = {"id": "4", 'note"custom_id': "req-5", **answer("req-4")}  # an escaped quote
    output = write(tmp_path / "out.jsonl", tricky, answer("req-1", "real"), nested_only, quoted)
    join = iter_results(output, None, input=batch_input)
    results = {r.custom_id: r for r in join}
    assert results["req-2"].status == "succeeded"
    assert results["req-1"].body["choices"][0]["message"]["content"] == "real"
    assert results["req-3"].status == "missing"
    assert results["req-4"].status == "succeeded" and results["req-5"].status == "missing"
    assert [(p.code, p.line) for p in join.problems] == [("missing_custom_id", 3)]


def test_join_matches_a_dict_join_on_a_shuffled_batch(tmp_path: Path) -> None:
    """500 requests, answers shuffled between the two files: the join equals the obvious
    in-memory one (every id once, in input order, with its own answer)."""
    rng = random.Random(7)
    ids = [f"q{n:04d}-{rng.random():.6f}" for n in range(500)]
    batch_input = write(tmp_path / "in.jsonl", *(request(custom_id) for custom_id in ids))
    outcome: dict[str, dict[str, Any]] = {}
    for custom_id in ids:
        kind = rng.choice(["ok", "ok", "ok", "429", "expired", "gone"])
        if kind == "ok":
            outcome[custom_id] = answer(custom_id, f"answer to {custom_id}")
        elif kind == "429":
            outcome[custom_id] = answer(custom_id, status=429)
        elif kind == "expired":
            outcome[custom_id] = never_ran(custom_id)
    lines = list(outcome.values())
    rng.shuffle(lines)
    output = write(tmp_path / "out.jsonl", *[x for x in lines if x["response"]])
    errors = write(tmp_path / "err.jsonl", *[x for x in lines if not x["response"]])
    results = list(iter_results(output, errors, input=batch_input))
    assert [r.custom_id for r in results] == ids
    assert [r.line for r in results] == list(range(1, 501))
    for result in results:
        expected = outcome.get(result.custom_id)
        if expected is None:
            assert result.status == "missing"
        else:
            assert result == parse_result_line(expected, result.line)


def test_retry_file_is_the_input_lines_byte_for_byte(tmp_path: Path) -> None:
    raw_lines = [
        b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"model": "m", "messages": [{"role": "user", "content": "caf\\u00e9"}]}}\n',
        orjson.dumps(request("b")) + b"\n",
        orjson.dumps(request("c")),  # the last line, no newline
    ]
    batch_input = tmp_path / "in.jsonl"
    batch_input.write_bytes(b"".join(raw_lines))
    dest = tmp_path / "retry" / "retry.jsonl"
    assert write_retry_file(batch_input, [1, 3], dest) == 2
    assert dest.read_bytes() == raw_lines[0] + raw_lines[2] + b"\n"
    assert [p.name for p in dest.parent.iterdir()] == ["retry.jsonl"]  # no temp left
    assert write_retry_file(batch_input, [], tmp_path / "none.jsonl") == 0
    assert not (tmp_path / "none.jsonl").exists()


def test_summary_counts_errors_and_tokens() -> None:
    summary = Summary()
    summary.add(parse_result_line(answer("a", prompt_tokens=5, completion_tokens=2)))
    summary.add(parse_result_line(answer("b", prompt_tokens=7, completion_tokens=3)))
    summary.add(parse_result_line(answer("c", status=429)))
    summary.add(parse_result_line(answer("d", status=429)))
    summary.add(parse_result_line(never_ran("e")))
    summary.add(Result("f", "missing"))
    document = summary.to_dict()
    assert document["total"] == 6
    assert document["counts"] == {
        "succeeded": 2,
        "failed": 2,
        "expired": 1,
        "cancelled": 0,
        "missing": 1,
    }
    assert document["top_errors"][0] == {"error": "rate_limit", "count": 2, "example": "c"}
    assert document["usage"] == {"prompt_tokens": 12, "completion_tokens": 5}
    assert not summary.all_succeeded


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=10),
    last_newline=st.booleans(),
    block=st.integers(1, 16),
    max_line=st.integers(1, 24),
)
def test_line_blocks_are_the_lines_with_their_offsets(
    lines: list[bytes], last_newline: bool, block: int, max_line: int
) -> None:
    """The index pass's reader: every line once, at its file offset, an over-long line by
    its length, whatever the block size (a line may span many blocks)."""
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    expected: list[Any] = []
    offset = 0
    for line in io.BytesIO(data).readlines():
        expected.append((line, offset) if len(line) <= max_line else LongLine(len(line)))
        offset += len(line)
    with (
        patch.object(results_module, "_BLOCK", block),
        patch.object(results_module, "MAX_LINE", max_line),
    ):
        got = [
            entry
            if isinstance(entry, LongLine)
            else (buffer[entry[0] : entry[1]], offset + entry[0])
            for buffer, offset, entries in results_module._line_blocks(io.BytesIO(data))
            for entry in entries
        ]
    assert got == expected


@pytest.mark.parametrize(
    "custom_id", ['say "hi"', "back\\slash", "ünïcödé ☃", "tab\there", "x" * 300]
)
def test_odd_custom_ids_are_joined_by_their_value(tmp_path: Path, custom_id: str) -> None:
    """Ids the quick reading of a line cannot take as they are (escapes, non-ASCII) are read
    by parsing the line: the join still finds each request's own answer."""
    ids = ["plain-1", custom_id, "plain-2"]
    batch_input = write(tmp_path / "in.jsonl", *(request(i) for i in ids))
    output = write(tmp_path / "out.jsonl", *(answer(i, f"to {i}") for i in reversed(ids)))
    join = iter_results(output, None, input=batch_input)
    results = list(join)
    assert [r.custom_id for r in results] == ids
    assert [r.body["choices"][0]["message"]["content"] for r in results] == [f"to {i}" for i in ids]
    assert join.problems == []


def test_an_over_long_result_line_is_not_held() -> None:
    """A line past the bound is let go as it is read: 8 MB in one line, a 1 MB bound, 64 KiB
    blocks, and the reader never holds much more than the bound."""
    data = io.BytesIO(b'{"custom_id":"' + b"x" * (8 << 20) + b'"}\nshort\n')
    with (
        patch.object(results_module, "_BLOCK", 64 << 10),
        patch.object(results_module, "MAX_LINE", 1 << 20),
    ):
        tracemalloc.start()
        try:
            entries = [e for _, _, block in results_module._line_blocks(data) for e in block]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert entries[0] == LongLine((8 << 20) + 17)  # the line, its end included
    assert len(entries) == 2 and isinstance(entries[1], tuple)  # and the short line after it
    assert peak < 3 << 20, f"held {peak:,} bytes"
