"""Property tests: no input makes the validator raise, and every line is accounted for."""

from __future__ import annotations

import io

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchkit import validate_file
from batchkit.validate import FileReport, Validator
from tests.helpers import CHAT, EMBEDDINGS, MODEL, SAMPLES, chat_body

VALID_LINES = [
    line
    for name in ("chat.jsonl", "embeddings.jsonl", "completions.jsonl")
    for line in (SAMPLES / name).read_bytes().splitlines(keepends=True)
]
CODES = {
    "invalid_json_line",
    "invalid_encoding",
    "byte_order_mark",
    "missing_required_parameter",
    "invalid_type",
    "invalid_method",
    "invalid_url",
    "duplicate_custom_id",
    "model_mismatch",
    "streaming_unsupported",
    "invalid_request",
    "empty_file",
    "too_many_tasks",
    "file_too_large",
    "too_many_embedding_inputs",
    "blank_line",
    "unknown_parameter",
    "long_custom_id",
    "near_limit",
}


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def assert_accounted_for(data: bytes, report: FileReport) -> None:
    lines = line_count(data)
    assert report.bytes == len(data)
    assert {i.code for i in report.errors + report.warnings} <= CODES
    assert all(i.line is None or 1 <= i.line <= lines for i in report.errors + report.warnings)
    assert report.errors_total >= len(report.errors)
    whole_file = any(
        i.code in {"invalid_encoding", "invalid_json_line"} and i.message.startswith("the file")
        for i in report.errors
    )
    if not whole_file:
        blank = sum(1 for i in report.warnings if i.code == "blank_line")
        assert report.requests + blank == lines  # each line is a request or a blank line


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert_accounted_for(data, validate_file(io.BytesIO(data)))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                b"\n",
                b"{",
                b"}",
                b"[",
                b"]",
                b'"',
                b":",
                b",",
                b"\r\n",
                b"\xef\xbb\xbf",
                b"NaN",
                b"1e999",
                b"null",
                b"\xff",
                b" ",
            ]
        ),
        max_size=60,
    )
)
def test_json_like_noise_never_raises(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert_accounted_for(data, validate_file(io.BytesIO(data)))


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.sampled_from(VALID_LINES), min_size=1, max_size=12))
    data = bytearray(b"".join(lines))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        if action == "delete":
            del data[at]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "replace":
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at:]
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_files())
def test_mutated_valid_files_never_raise(data: bytes) -> None:
    assert_accounted_for(data, validate_file(io.BytesIO(data)))


@given(st.lists(st.sampled_from(VALID_LINES), min_size=1, max_size=20))
def test_unmutated_sample_lines_are_only_flagged_for_file_rules(lines: list[bytes]) -> None:
    # Valid lines combined can break only the file's rules: duplicate ids, another model than
    # the first line, or another endpoint (whose body then also breaks the batch's schema).
    report = validate_file(io.BytesIO(b"".join(lines)))
    allowed = {"duplicate_custom_id", "invalid_url", "model_mismatch", "invalid_request"}
    assert {i.code for i in report.errors} <= allowed
    wrong_url = {i.line for i in report.errors if i.code == "invalid_url"}
    assert {i.line for i in report.errors if i.code == "invalid_request"} <= wrong_url


def report_without_fast_path(data: bytes) -> FileReport:
    validator = Validator()
    validator.fast_path = False
    for raw in io.BytesIO(data):
        validator.feed(raw)
    return validator.finish()


@st.composite
def near_valid_records(draw: st.DrawFn) -> bytes:
    """Requests that are valid or one small step away, in every top-level respect."""
    record: dict[str, object] = {
        "custom_id": draw(st.sampled_from(["a", "b", "x" * 64, "y" * 65, "", 7, None])),
        "method": draw(st.sampled_from(["POST", "POST", "GET"])),
        "url": draw(st.sampled_from([CHAT, CHAT, CHAT, "/chat/completions", EMBEDDINGS, 3])),
        "body": draw(
            st.sampled_from(
                [
                    chat_body(),
                    chat_body(),
                    chat_body(model="other/model"),
                    chat_body(stream=True),
                    chat_body(stream=False),
                    chat_body(temperature=3),
                    {"model": MODEL, "input": "x"},
                    {"messages": []},
                    "text",
                ]
            )
        ),
    }
    if draw(st.booleans()):
        del record[draw(st.sampled_from(sorted(record)))]
    if draw(st.integers(0, 5)) == 0:
        record["extra"] = 1
    return orjson.dumps(record) + b"\n"


@st.composite
def mixed_files(draw: st.DrawFn) -> bytes:
    """Valid sample lines and near-valid requests, in any order (ids repeat)."""
    line = st.one_of(st.sampled_from(VALID_LINES), near_valid_records())
    return b"".join(draw(st.lists(line, min_size=1, max_size=15)))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_files(), mixed_files()))
def test_the_fast_path_reports_exactly_what_the_full_checks_report(data: bytes) -> None:
    assert validate_file(io.BytesIO(data)) == report_without_fast_path(data)
