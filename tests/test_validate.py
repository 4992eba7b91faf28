"""The validator's rules, one test per rule and per code (CONTRACT.md sections 1 to 3)."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

import batchkit
from batchkit import Limits, validate_file
from batchkit.errors import UsageError
from batchkit.validate import FileReport
from tests.helpers import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MODEL,
    REPORT_KEYS,
    chat_body,
    jsonl,
    request,
)


def check(data: bytes, **kwargs: object) -> FileReport:
    return validate_file(io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


def codes(report: FileReport) -> list[tuple[int | None, str, str | None]]:
    return [(i.line, i.code, i.param) for i in report.errors]


def warning_codes(report: FileReport) -> list[tuple[int | None, str, str | None]]:
    return [(i.line, i.code, i.param) for i in report.warnings]


# -- a valid file ---------------------------------------------------------------------------


def test_valid_file_reports_counts_endpoint_and_model() -> None:
    data = jsonl(request("a"), request("b"), request("c"))
    report = check(data)
    assert report.valid and report.errors == [] and report.warnings == []
    assert (report.requests, report.bytes, report.endpoint, report.model) == (
        3,
        len(data),
        CHAT,
        MODEL,
    )


def test_accepts_a_path_a_str_and_a_binary_stream(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_bytes(jsonl(request()))
    with path.open("rb") as stream:
        results = [validate_file(path), validate_file(str(path)), validate_file(stream)]
    assert [r.valid for r in results] == [True, True, True]
    assert results[0].path == str(path)


def test_crlf_line_ends_and_a_missing_final_newline_are_valid() -> None:
    crlf = jsonl(request("a"), request("b")).replace(b"\n", b"\r\n")
    assert check(crlf).valid and check(crlf).requests == 2
    no_final = jsonl(request("a"), request("b")).rstrip(b"\n")
    assert check(no_final).valid and check(no_final).requests == 2


# -- JSON and encoding ----------------------------------------------------------------------


def test_invalid_json_line_names_the_column() -> None:
    report = check(jsonl(request("a"), b'{"custom_id": "b" "method": "POST"}', request("c")))
    assert codes(report) == [(2, "invalid_json_line", None)]
    assert "column 19" in report.errors[0].message


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_invalid_json(token: bytes) -> None:
    line = orjson.dumps(request()).replace(b"}}", b', "temperature": X}}')
    report = check(jsonl(line.replace(b"X", token)))
    assert codes(report) == [(1, "invalid_json_line", None)]
    assert "NaN and Infinity are not JSON" in report.errors[0].message


def test_a_line_that_is_json_but_not_an_object() -> None:
    report = check(jsonl(request("a"), b'["not", "an", "object"]', b"42"))
    assert codes(report) == [(2, "invalid_json_line", None), (3, "invalid_json_line", None)]
    assert "not an object (it is array)" in report.errors[0].message


def test_a_json_array_file_on_one_line() -> None:
    data = orjson.dumps([request("a"), request("b")]) + b"\n"
    report = check(data)
    assert codes(report) == [(1, "invalid_json_line", None)]
    assert "--fix" in report.errors[0].message


def test_a_pretty_printed_file_is_one_error_not_one_per_line() -> None:
    data = orjson.dumps([request("a"), request("b")], option=orjson.OPT_INDENT_2)
    report = check(data)
    assert codes(report) == [(1, "invalid_json_line", None)]
    assert "pretty-printed" in report.errors[0].message
    assert report.bytes == len(data)


def test_invalid_utf8_names_the_line_and_byte() -> None:
    bad = orjson.dumps(request("b")).replace(b"Hello", b"H\xe9llo")
    report = check(jsonl(request("a"), bad))
    assert codes(report) == [(2, "invalid_encoding", None)]
    position = bad.index(b"\xe9") + 1
    assert f"byte {position}" in report.errors[0].message


def test_utf16_file_is_one_encoding_error() -> None:
    data = jsonl(request()).decode().encode("utf-16")
    report = check(data)
    assert codes(report) == [(None, "invalid_encoding", None)]
    assert "UTF-16" in report.errors[0].message


def test_byte_order_mark_is_reported_and_the_line_still_checked() -> None:
    report = check(b"\xef\xbb\xbf" + jsonl(request("a", method_extra=None)))
    assert codes(report) == [(1, "byte_order_mark", None)]
    assert warning_codes(report) == [(1, "unknown_parameter", "method_extra")]


def test_a_50_mb_single_line_is_checked_like_any_other() -> None:
    body = chat_body()
    body["messages"][0]["content"] = "x" * 50_000_000
    report = check(jsonl(request("big", body), request("small")))
    assert report.valid and report.requests == 2 and report.bytes > 50_000_000


# -- the four keys --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["custom_id", "method", "url", "body"])
def test_missing_required_parameter(key: str) -> None:
    record = request()
    del record[key]
    report = check(jsonl(record))
    assert codes(report) == [(1, "missing_required_parameter", key)]


@pytest.mark.parametrize(
    ("record", "param"),
    [
        (request(custom_id=7), "custom_id"),
        (request(custom_id=None), "custom_id"),
        (request(custom_id=""), "custom_id"),
        (request(body="hello"), "body"),
        (request(body=[chat_body()]), "body"),
        (request(url=["/v1/chat/completions"]), "url"),
    ],
)
def test_invalid_type(record: dict, param: str) -> None:
    assert codes(check(jsonl(record))) == [(1, "invalid_type", param)]


@pytest.mark.parametrize("method", ["GET", "post", None, 1])
def test_invalid_method(method: object) -> None:
    record = request()
    record["method"] = method
    assert codes(check(jsonl(record))) == [(1, "invalid_method", "method")]


def test_url_without_v1_says_so() -> None:
    report = check(jsonl(request(url="/chat/completions")))
    assert codes(report) == [(1, "invalid_url", "url")]
    assert 'missing "/v1"?' in report.errors[0].message
    assert report.endpoint == CHAT  # the bodies were still checked as chat requests


def test_url_that_differs_from_the_batch_endpoint() -> None:
    report = check(jsonl(request("a"), request("b", url=COMPLETIONS)))
    assert codes(report) == [(2, "invalid_url", "url")]
    assert "the first line" in report.errors[0].message


def test_endpoint_option_overrides_the_first_line() -> None:
    report = check(jsonl(request("a")), endpoint=EMBEDDINGS)
    assert (1, "invalid_url", "url") in codes(report)
    assert "--endpoint" in report.errors[0].message


def test_unsupported_endpoint_is_invalid_url() -> None:
    report = check(jsonl(request(url="/v1/messages")))
    assert codes(report) == [(1, "invalid_url", "url")]
    assert report.endpoint is None


def test_unknown_endpoint_argument_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="did you mean /v1/chat/completions"):
        check(jsonl(request()), endpoint="/chat/completions")


def test_duplicate_custom_id_names_the_first_line() -> None:
    report = check(jsonl(request("a"), request("b"), request("a"), request("a")))
    assert codes(report) == [
        (3, "duplicate_custom_id", "custom_id"),
        (4, "duplicate_custom_id", "custom_id"),
    ]
    assert "line 1" in report.errors[0].message


def test_long_custom_id_is_a_warning() -> None:
    report = check(jsonl(request("x" * 65), request("y" * 64)))
    assert report.valid
    assert warning_codes(report) == [(1, "long_custom_id", "custom_id")]


def test_unknown_top_level_key_is_a_warning() -> None:
    report = check(jsonl(request(priority="high")))
    assert report.valid and warning_codes(report) == [(1, "unknown_parameter", "priority")]


def test_blank_lines_are_warnings_and_not_requests() -> None:
    report = check(jsonl(request("a"), b"", b"   ", request("b")))
    assert report.valid and report.requests == 2
    assert warning_codes(report) == [(2, "blank_line", None), (3, "blank_line", None)]


# -- bodies ---------------------------------------------------------------------------------


def test_model_mismatch() -> None:
    report = check(jsonl(request("a"), request("b", chat_body(model="openai/gpt-4o"))))
    assert codes(report) == [(2, "model_mismatch", "body.model")]
    assert MODEL in report.errors[0].message


@pytest.mark.parametrize("endpoint", [CHAT, COMPLETIONS])
def test_streaming_unsupported(endpoint: str) -> None:
    body = (
        chat_body(stream=True)
        if endpoint == CHAT
        else {"model": MODEL, "prompt": "x", "stream": True}
    )
    report = check(jsonl(request(body=body, url=endpoint)))
    assert codes(report) == [(1, "streaming_unsupported", "body.stream")]


def test_stream_false_is_fine() -> None:
    assert check(jsonl(request(body=chat_body(stream=False)))).valid


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "body.model", "required"),
        ({"model": MODEL}, "body.messages", "required"),
        (
            {"model": MODEL, "messages": [{"role": "narrator", "content": "x"}]},
            "body.messages[0].role",
            '"narrator" is not one of "developer", "system", "user"',
        ),
        (chat_body(temperature=2.5), "body.temperature", "must be <= 2"),
        (chat_body(top_p=-0.1), "body.top_p", "must be >= 0"),
        (chat_body(n=0), "body.n", "must be >= 1"),
        (chat_body(max_tokens="100"), "body.max_tokens", "expected integer"),
        (chat_body(stop=["a", "b", "c", "d", "e"]), "body.stop", ""),
        ({"model": MODEL, "messages": []}, "body.messages", "at least 1"),
    ],
)
def test_invalid_request_chat(body: dict, param: str, words: str) -> None:
    report = check(jsonl(request(body=body)))
    assert [(i.line, i.code, i.param) for i in report.errors] == [(1, "invalid_request", param)]
    assert words in report.errors[0].message
    assert report.errors[0].message.startswith(param)


@pytest.mark.parametrize(
    ("url", "body", "expected"),
    [
        (
            EMBEDDINGS,
            {"model": MODEL, "input": ""},
            ("body.input", "body.input: is 0 characters long; must be at least 1"),
        ),
        (
            EMBEDDINGS,
            {"model": MODEL, "input": ["a", 1]},
            ("body.input[1]", "body.input[1]: expected string, got number 1"),
        ),
        (
            CHAT,
            chat_body(stop=["a"] * 5),
            ("body.stop", "body.stop: has 5 items; must have at most 4"),
        ),
        (
            CHAT,
            {"model": MODEL, "messages": [{"role": "assistant", "content": None}]},
            (
                "body.messages[0].content",
                "body.messages[0].content: expected string or array, got null",
            ),
        ),
        (
            CHAT,
            chat_body(logit_bias={"50256": 101}),
            ("body.logit_bias.50256", "body.logit_bias.50256: 101 is out of range: must be <= 100"),
        ),
        (
            CHAT,
            {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]},
            ("body.messages[0].tool_call_id", "body.messages[0].tool_call_id is required"),
        ),
        (
            CHAT,
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            (
                "body.messages[0].content[0].type",
                'body.messages[0].content[0].type: "video" is not one of "text", "image_url", '
                '"input_audio", "file"',
            ),
        ),
    ],
)
def test_body_messages_name_the_path_and_the_rule(
    url: str, body: dict, expected: tuple[str, str]
) -> None:
    report = check(jsonl(request(body=body, url=url)))
    assert [(i.code, i.param, i.message) for i in report.errors] == [("invalid_request", *expected)]


def test_every_body_problem_of_a_line_is_reported() -> None:
    body = {"model": MODEL, "messages": [{"role": "narrator", "content": "x"}], "temperature": 9}
    report = check(jsonl(request(body=body)))
    assert sorted(i.param or "" for i in report.errors) == [
        "body.messages[0].role",
        "body.temperature",
    ]


def test_a_line_can_have_several_errors() -> None:
    record = request(custom_id=5, url="/chat/completions", body=chat_body(stream=True))
    del record["method"]
    found = {(i.code, i.param) for i in check(jsonl(record)).errors}
    assert found == {
        ("missing_required_parameter", "method"),
        ("invalid_type", "custom_id"),
        ("invalid_url", "url"),
        ("streaming_unsupported", "body.stream"),
    }


def test_embeddings_rules() -> None:
    ok = {"model": MODEL, "input": ["a", "b"]}
    report = check(
        jsonl(
            request("a", ok, EMBEDDINGS),
            request("b", {"model": MODEL, "input": ["x"] * 2049}, EMBEDDINGS),
            request("c", {"model": MODEL, "input": []}, EMBEDDINGS),
            request("d", {"model": MODEL, "input": "x", "temperature": 1}, EMBEDDINGS),
            request("e", {"model": MODEL, "input": "x", "encoding_format": "int8"}, EMBEDDINGS),
        )
    )
    assert [(i.line, i.param) for i in report.errors] == [
        (2, "body.input"),
        (3, "body.input"),
        (4, "body.temperature"),
        (5, "body.encoding_format"),
    ]
    assert {i.code for i in report.errors} == {"invalid_request"}


@pytest.mark.parametrize(
    ("value", "count"),
    [("one", 1), (["a", "b", "c"], 3), ([1, 2, 3], 1), ([[1, 2], [3]], 2)],
)
def test_embedding_inputs_are_counted(value: object, count: int) -> None:
    report = check(jsonl(request(body={"model": MODEL, "input": value}, url=EMBEDDINGS)))
    assert report.valid and report.embedding_inputs == count


def test_completions_body() -> None:
    good = {"model": MODEL, "prompt": ["a", "b"], "best_of": 2, "logprobs": 5}
    bad = {"model": MODEL, "prompt": "a", "logprobs": 6}
    report = check(jsonl(request("a", good, COMPLETIONS), request("b", bad, COMPLETIONS)))
    assert codes(report) == [(2, "invalid_request", "body.logprobs")]


def test_unknown_body_keys_are_allowed_for_chat() -> None:
    assert check(jsonl(request(body=chat_body(provider_option={"x": 1})))).valid


# -- file limits ----------------------------------------------------------------------------


def test_empty_file() -> None:
    for data in (b"", b"\n\n"):
        report = check(data)
        assert codes(report) == [(None, "empty_file", None)]


def test_too_many_tasks_at_the_limit_and_one_over() -> None:
    three = jsonl(request("a"), request("b"), request("c"))
    assert check(three, limits=Limits(max_requests=3)).valid
    report = check(three, limits=Limits(max_requests=2))
    assert codes(report) == [(None, "too_many_tasks", None)]


def test_file_too_large_at_the_limit_and_one_over() -> None:
    data = jsonl(request("a"), request("b"))
    assert check(data, limits=Limits(max_bytes=len(data))).valid
    report = check(data, limits=Limits(max_bytes=len(data) - 1))
    assert codes(report) == [(None, "file_too_large", None)]


def test_too_many_embedding_inputs_at_the_limit_and_one_over() -> None:
    data = jsonl(
        request("a", {"model": MODEL, "input": ["x", "y"]}, EMBEDDINGS),
        request("b", {"model": MODEL, "input": "z"}, EMBEDDINGS),
    )
    assert check(data, limits=Limits(max_embedding_inputs=3)).valid
    report = check(data, limits=Limits(max_embedding_inputs=2))
    assert codes(report) == [(None, "too_many_embedding_inputs", None)]


def test_near_limit_warning_at_90_percent() -> None:
    data = jsonl(*(request(f"r{i}") for i in range(9)))
    report = check(data, limits=Limits(max_requests=10))
    assert report.valid and warning_codes(report) == [(None, "near_limit", None)]
    assert not check(data, limits=Limits(max_requests=11)).warnings


def test_profiles_carry_their_limits() -> None:
    assert batchkit.get_profile("azure").limits.max_requests == 100_000
    assert batchkit.get_profile("orq").limits.max_bytes == 209_715_200
    with pytest.raises(UsageError, match="unknown profile 'nope'"):
        batchkit.get_profile("nope")


def test_profile_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHKIT_PROFILE", "azure")
    assert batchkit.get_profile().name == "azure"
    assert batchkit.get_profile("openai").name == "openai"  # the flag wins


def test_limits_must_be_positive() -> None:
    with pytest.raises(UsageError, match="max_requests must be positive"):
        Limits(max_requests=0)


# -- the report -----------------------------------------------------------------------------


def test_max_issues_caps_the_list_not_the_count() -> None:
    data = jsonl(*(request("same") for _ in range(20)))
    report = check(data, max_issues=5)
    assert len(report.errors) == 5 and report.errors_total == 19


def test_issues_are_in_line_order_with_file_level_last() -> None:
    data = jsonl(request("a"), b"{", request("a"), request("b", url="/x"))
    report = check(data, limits=Limits(max_requests=1))
    lines = [i.line for i in report.errors]
    assert lines == [2, 3, 4, None]


def test_to_dict_is_the_documented_shape() -> None:
    report = check(jsonl(request("a"), request("a")))
    assert set(report.to_dict()) == REPORT_KEYS
    assert report.to_dict()["errors"][0] == {
        "line": 2,
        "code": "duplicate_custom_id",
        "param": "custom_id",
        "message": report.errors[0].message,
    }


def test_missing_file_and_directory_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        validate_file(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="is a directory"):
        validate_file(tmp_path)


def test_every_library_error_is_a_batchkit_error() -> None:
    for name in ("InvalidInputError", "UsageError", "ApiError", "AuthError", "NetworkError"):
        assert issubclass(getattr(batchkit, name), batchkit.BatchkitError)


def test_a_chat_body_sent_to_v1_responses_says_which_field_to_use() -> None:
    """/v1/responses is a batch endpoint now: a chat body there is a body error, not a url
    error, and it names the field the endpoint takes."""
    report = check(jsonl(request(url="/v1/responses")))
    assert codes(report) == [
        (1, "invalid_request", "body.input"),
        (1, "invalid_request", "body.messages"),
    ]
    assert report.endpoint == "/v1/responses"
    assert "/v1/responses takes input" in report.errors[1].message
