"""samples/invalid/every_mistake.jsonl holds one of every per-line mistake of CONTRACT.md
section 3, one per line; the file-level codes are provoked with small limits.  The verdict must
be exactly these errors at exactly these lines: nothing missed, nothing extra."""

from __future__ import annotations

from batchkit import Limits, validate_file
from tests.helpers import EMBEDDINGS, MODEL, SAMPLES, jsonl, request

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
