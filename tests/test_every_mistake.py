"""samples/invalid/every_mistake.jsonl holds one of every per-line mistake of CONTRACT.md
section 3, one per line; the file-level codes are provoked with small limits.  The verdict must
be exactly these errors at exactly these lines: nothing missed, nothing extra."""

from __future__ import annotations

import pytest

from batchkit import Limits, validate_file
from tests.helpers import EMBEDDINGS, MODEL, SAMPLES, jsonl, request
from tests.servers.cli import clean_env, explain, json_out, run_batchkit

EVERY_MISTAKE = SAMPLES / "invalid" / "every_mistake.jsonl"


def test_every_per_line_mistake_at_its_line() -> None:
    report = validate_file(EVERY_MISTAKE)
    assert [(i.line, i.code, i.param) for i in report.errors] == [
        (1, "byte_order_mark", None),
        (3, "invalid_json_line", None),
        (4, "invalid_encoding", None),
        (5, "missing_required_parameter", "custom_id"),
        (6, "invalid_type", "custom_id"),
        (7, "invalid_method", "method"),
        (8, "invalid_url", "url"),
        (9, "duplicate_custom_id", "custom_id"),
        (10, "model_mismatch", "body.model"),
        (11, "streaming_unsupported", "body.stream"),
        (12, "invalid_request", "body.messages[0].role"),
    ]
    assert [(i.line, i.code, i.param) for i in report.warnings] == [
        (13, "blank_line", None),
        (14, "unknown_parameter", "priority"),
        (14, "long_custom_id", "custom_id"),
    ]
    assert report.requests == 13


def test_file_level_limits_are_added_with_line_null() -> None:
    size = EVERY_MISTAKE.stat().st_size
    report = validate_file(EVERY_MISTAKE, limits=Limits(max_requests=12, max_bytes=size - 1))
    assert [(i.line, i.code) for i in report.errors][-2:] == [
        (None, "too_many_tasks"),
        (None, "file_too_large"),
    ]
    assert report.errors_total == 13


def test_too_many_embedding_inputs_and_empty_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    embeddings = tmp_path / "embeddings.jsonl"
    embeddings.write_bytes(
        jsonl(
            *(request(f"e{i}", {"model": MODEL, "input": ["a", "b"]}, EMBEDDINGS) for i in range(3))
        )
    )
    report = validate_file(embeddings, limits=Limits(max_embedding_inputs=5))
    assert [(i.line, i.code) for i in report.errors] == [(None, "too_many_embedding_inputs")]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert [(i.line, i.code) for i in validate_file(empty).errors] == [(None, "empty_file")]


RESPONSES_MISTAKES = SAMPLES / "invalid" / "responses_mistakes.jsonl"


def test_the_typical_responses_mistakes_at_their_lines_and_paths() -> None:
    """A chat body sent to /v1/responses, input missing, stream: true, a wrong text.format, a
    chat response_format, a chat content part: each at its line and JSON path (the real CLI)."""
    result = run_batchkit("validate", str(RESPONSES_MISTAKES), "--format", "json", env=clean_env())
    assert result.returncode == 1, explain(result)
    (report,) = json_out(result)["files"]
    found = [(i["line"], i["code"], i["param"]) for i in report["errors"]]
    assert found == [
        (2, "invalid_request", "body.input"),
        (2, "invalid_request", "body.messages"),
        (3, "invalid_request", "body.input"),
        (4, "streaming_unsupported", "body.stream"),
        (5, "invalid_request", "body.text.format.type"),
        (6, "invalid_request", "body.response_format"),
        (7, "invalid_request", "body.input[0].content[0].type"),
    ]
    messages = {(i["line"], i["param"]): i["message"] for i in report["errors"]}
    assert (
        "messages is a chat completions field; /v1/responses takes input"
        in messages[(2, "body.messages")]
    )
    assert "/v1/responses takes text.format" in messages[(6, "body.response_format")]
    assert '"input_text"' in messages[(7, "body.input[0].content[0].type")]
    assert report["endpoint"] == "/v1/responses" and report["warnings"] == []


@pytest.mark.parametrize("name", ["responses.jsonl", "moderations.jsonl", "images.jsonl"])
def test_the_new_endpoint_samples_pass_strict(name: str) -> None:
    result = run_batchkit("validate", "--strict", str(SAMPLES / name), env=clean_env())
    assert result.returncode == 0, explain(result)
