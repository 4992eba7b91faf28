"""Issue 7, the validator's side: what a new user broke in an afternoon, each as a test.

Items about the command line run ``python -m batchkit validate`` as a real subprocess.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from batchkit import Limits, validate_file
from batchkit.errors import UsageError
from batchkit.validate import FileReport, Validator
from tests.helpers import CHAT, COMPLETIONS, EMBEDDINGS, MODEL, chat_body, jsonl, request
from tests.servers.cli import clean_env, explain, json_out, run_batchkit


def check(data: bytes, **kwargs: object) -> FileReport:
    return validate_file(io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


def issues(report: FileReport) -> list[tuple[int | None, str, str | None]]:
    return [(i.line, i.code, i.param) for i in report.errors + report.warnings]


def validate_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_batchkit("validate", str(path), *args, env=clean_env())


def write(tmp_path: Path, data: bytes, name: str = "batch.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- 1. U+2028, U+2029 and U+0085 raw inside strings ----------------------------------------


@pytest.mark.parametrize(
    ("char", "name"),
    [("\u2028", "U+2028"), ("\u2029", "U+2029"), ("\u0085", "U+0085")],
)
def test_a_raw_unicode_line_separator_is_a_warning_with_its_path(char: str, name: str) -> None:
    body = chat_body(messages=[{"role": "user", "content": f"one{char}two"}])
    line = orjson.dumps(request("a", body))  # orjson writes these characters raw
    assert char.encode() in line
    report = check(jsonl(request("z"), line))
    assert report.valid
    assert issues(report) == [(2, "unicode_line_separator", "body.messages[0].content")]
    message = report.warnings[0].message
    assert name in message and "batchkit build --fix" in message


def test_an_escaped_line_separator_is_fine_and_a_key_holding_one_is_named() -> None:
    escaped = orjson.dumps(request("a")).replace(b"Hello", b"Hel\\u2028lo")
    assert check(jsonl(escaped)).warnings == []
    keyed = request("b", chat_body(**{"x\u2029y": 1}))
    report = check(jsonl(keyed))
    assert issues(report) == [(1, "unicode_line_separator", "body.x\u2029y")]
    assert report.warnings[0].message.startswith("the key body.x")


def test_validate_warns_about_a_line_separator_and_strict_fails(tmp_path: Path) -> None:
    body = chat_body(messages=[{"role": "user", "content": "cell\u2028with a line separator"}])
    path = write(tmp_path, jsonl(request("a"), request("b", body)))
    result = validate_cli(path)
    assert result.returncode == 0, explain(result)
    assert f"{path}:2: warning: unicode_line_separator: body.messages[0].content" in result.stdout
    assert "\u2028" not in result.stdout  # shown as an escape, not printed raw
    assert validate_cli(path, "--strict").returncode == 1


def test_check_record_judges_the_bytes_it_is_written_as() -> None:
    record = request("a", chat_body(messages=[{"role": "user", "content": "a\u2028b"}]))
    assert [i.code for i in Validator().check_record(record, 100)] == ["unicode_line_separator"]
    escaped = orjson.dumps(record).replace("\u2028".encode(), b"\\u2028")
    assert Validator().check_record(record, 100, raw=escaped) == []


# -- 3. a url typo on line 1 ----------------------------------------------------------------


def test_a_url_typo_on_line_1_is_one_error_with_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        jsonl(request("a", url="/v1/chat/completion"), request("b"), request("c")),
    )
    result = validate_cli(path, "--format", "json")
    assert result.returncode == 1, explain(result)
    (file,) = json_out(result)["files"]
    assert [(e["line"], e["code"]) for e in file["errors"]] == [(1, "invalid_url")]
    assert 'did you mean "/v1/chat/completions"?' in file["errors"][0]["message"]
    assert file["endpoint"] == CHAT


def test_a_first_line_on_another_endpoint_gives_one_invalid_url_per_differing_line(
    tmp_path: Path,
) -> None:
    first = request("a", {"model": MODEL, "prompt": "Say hi"}, url=COMPLETIONS)
    path = write(tmp_path, jsonl(first, request("b"), request("c"), request("d")))
    result = validate_cli(path, "--format", "json")
    (file,) = json_out(result)["files"]
    assert [(e["line"], e["code"]) for e in file["errors"]] == [
        (2, "invalid_url"),
        (3, "invalid_url"),
        (4, "invalid_url"),
    ]
    assert "from line 1, the first line that names one" in file["errors"][0]["message"]


def test_lines_before_the_first_known_url_are_checked_against_the_endpoint_they_mean() -> None:
    bad_body = request("a", chat_body(temperature=9), url="/v1/chat/completion")
    report = check(jsonl(bad_body, request("b")))
    assert issues(report) == [(1, "invalid_url", "url"), (1, "invalid_request", "body.temperature")]


def test_a_url_nothing_like_an_endpoint_still_says_which_ones_exist() -> None:
    report = check(jsonl(request("a", url="/v1/messages"), request("b")))
    assert issues(report) == [(1, "invalid_url", "url")]
    assert "not a batch endpoint batchkit supports" in report.errors[0].message


# -- 4. file-level errors whatever the cap --------------------------------------------------


def test_file_level_errors_are_listed_whatever_max_errors(tmp_path: Path) -> None:
    path = write(tmp_path, jsonl(*(request("same") for _ in range(6))))
    args = ("--max-errors", "2", "--max-requests", "5", "--max-bytes", "500")
    text = validate_cli(path, *args)
    assert text.returncode == 1
    assert f"{path}: too_many_tasks: the file has 6 requests" in text.stdout
    assert f"{path}: file_too_large: the file has" in text.stdout
    assert text.stdout.count("duplicate_custom_id") == 2
    assert "3 more not listed" in text.stdout  # 5 duplicates, 2 listed
    (file,) = json_out(validate_cli(path, *args, "--format", "json"))["files"]
    assert [(e["line"], e["code"]) for e in file["errors"]] == [
        (2, "duplicate_custom_id"),
        (3, "duplicate_custom_id"),
        (None, "too_many_tasks"),
        (None, "file_too_large"),
    ]
    assert file["errors_total"] == 7


def test_a_file_level_warning_is_listed_even_with_max_errors_0() -> None:
    data = jsonl(*(request(f"r{i}", url="/chat/completions") for i in range(9)))
    report = check(data, limits=Limits(max_requests=10), max_issues=0)
    assert [(i.line, i.code) for i in report.errors + report.warnings] == [(None, "near_limit")]


# -- 7. odd messages and control characters -------------------------------------------------


def test_a_null_custom_id_says_got_null() -> None:
    (error,) = check(jsonl(request(custom_id=None))).errors
    assert error.message == "custom_id must be a string, got null"
    (number,) = check(jsonl(request(custom_id=7))).errors
    assert number.message == "custom_id must be a string, got number 7; quote it"


def test_a_nan_from_a_python_caller_is_called_nan() -> None:
    record = request("a", chat_body(max_tokens=math.nan))
    (error,) = [i for i in Validator().check_record(record, 10) if i.severity == "error"]
    assert error.message == "body.max_tokens: expected integer or null, got NaN"


def test_control_characters_from_the_file_are_escaped_in_text_and_github(
    tmp_path: Path,
) -> None:
    sneaky = "gpt\n::error file=x.py,line=1::pwned\x1b[2J"
    path = write(tmp_path, jsonl(request("a"), request("b", chat_body(model=sneaky))))
    for output_format in ("text", "github"):
        result = validate_cli(path, "--format", output_format)
        assert result.returncode == 1, explain(result)
        lines = result.stdout.splitlines()
        assert not any(line.startswith("::error file=x.py") for line in lines), lines
        assert "\x1b" not in result.stdout
        assert "model_mismatch" in lines[0] and "\\n::error file=x.py" in lines[0]


# -- 9. memory does not grow with the longest line ------------------------------------------


def test_a_line_over_the_file_limit_is_one_error_counted_not_held() -> None:
    data = jsonl(request("a"), request("b", chat_body(temperature=1.0)), request("c"))
    size = len(jsonl(request("b", chat_body(temperature=1.0))))
    report = check(data, limits=Limits(max_bytes=size - 1))
    assert issues(report) == [(2, "file_too_large", None), (None, "file_too_large", None)]
    assert report.errors[0].message.startswith(f"line 2 alone is {size:,} bytes")
    assert (report.requests, report.bytes) == (3, len(data))


def test_a_300_mb_line_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """Under ``ulimit -v`` of about 200 MB the 300 MB line never fits: it must not be held."""
    path = tmp_path / "one_line.jsonl"
    with path.open("wb") as stream:
        stream.truncate(300_000_000)  # sparse: cheap to make, 300 MB to read
    command = f"ulimit -v 200000; exec {sys.executable} -m batchkit validate {path}"
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=clean_env(), timeout=120
    )
    assert result.returncode == 1, explain(result)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert f"{path}:1: file_too_large: line 1 alone is 300,000,000 bytes" in result.stdout


# -- 11. a text stream is a usage error -----------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [io.StringIO(jsonl(request()).decode()), jsonl(request()), [jsonl(request()).decode()]],
    ids=["StringIO", "bytes", "list of str"],
)
def test_a_text_source_is_a_usage_error_that_says_what_to_pass(source: object) -> None:
    with pytest.raises(UsageError, match=r"pass a path, a binary file .* io\.BytesIO"):
        validate_file(source)  # type: ignore[arg-type]


def test_a_file_opened_in_text_mode_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, jsonl(request()))
    with path.open() as text, pytest.raises(UsageError, match="not a text stream"):
        validate_file(text)  # type: ignore[arg-type]


# -- 12. warnings users asked for -----------------------------------------------------------


def test_a_body_key_close_to_a_known_one_is_a_warning_with_the_suggestion() -> None:
    report = check(jsonl(request("a", chat_body(max_token=100, provider_option=1))))
    assert report.valid and issues(report) == [(1, "unknown_parameter", "body.max_token")]
    assert "did you mean max_tokens?" in report.warnings[0].message
    embeddings = request("b", {"model": MODEL, "input": "x", "dimension": 8}, url=EMBEDDINGS)
    (error,) = check(jsonl(embeddings)).errors
    assert "did you mean dimensions?" in error.message


@pytest.mark.parametrize(
    ("url", "body", "param"),
    [
        (CHAT, chat_body(max_tokens=0), "body.max_tokens"),
        (CHAT, chat_body(max_completion_tokens=-5), "body.max_completion_tokens"),
        (COMPLETIONS, {"model": MODEL, "prompt": "x", "max_tokens": 0}, "body.max_tokens"),
    ],
)
def test_max_tokens_below_one_is_a_warning(url: str, body: dict, param: str) -> None:
    report = check(jsonl(request("a", body, url=url)))
    assert report.valid and issues(report) == [(1, "max_tokens_below_one", param)]


def test_max_tokens_0_scores_a_prompt_with_echo_and_negative_is_the_schemas_error() -> None:
    scoring = {"model": MODEL, "prompt": "x", "max_tokens": 0, "echo": True}
    assert issues(check(jsonl(request("a", scoring, url=COMPLETIONS)))) == []
    negative = {"model": MODEL, "prompt": "x", "max_tokens": -1}
    report = check(jsonl(request("a", negative, url=COMPLETIONS)))
    assert issues(report) == [(1, "invalid_request", "body.max_tokens")]


def test_a_blank_custom_id_is_a_warning() -> None:
    report = check(jsonl(request("   "), request("\t")))
    assert report.valid
    assert issues(report) == [
        (1, "blank_custom_id", "custom_id"),
        (2, "blank_custom_id", "custom_id"),
    ]


@pytest.mark.parametrize(
    ("line", "param"),
    [
        (b'{"custom_id":"a","custom_id":"b","method":"POST","url":"%s","body":%s}', "custom_id"),
        (
            b'{"custom_id" : "a", "method" : "POST", "url" : "%s", "body" : %s, "method" : "POST"}',
            "method",
        ),
    ],
    ids=["compact", "space before the colon"],
)
def test_a_key_written_twice_is_a_warning(line: bytes, param: str) -> None:
    raw = line % (CHAT.encode(), orjson.dumps(chat_body()))
    report = check(jsonl(raw))
    assert report.valid and issues(report) == [(1, "duplicate_key", param)]
    assert "keep only the last value" in report.warnings[0].message


def test_a_nested_key_written_twice_names_the_object_and_the_key() -> None:
    body = b'{"model":"%s","messages":[{"role":"user","content":"a","role":"system"}]}'
    raw = b'{"custom_id":"a","method":"POST","url":"%s","body":%s}' % (
        CHAT.encode(),
        body % MODEL.encode(),
    )
    (warning,) = check(jsonl(raw)).warnings
    assert (warning.code, warning.param) == ("duplicate_key", "body.messages[0].role")
    assert warning.message.startswith('body.messages[0] has the key "role" 2 times')
    assert '("system")' in warning.message


def test_quotes_and_colons_inside_strings_are_not_taken_for_keys() -> None:
    texts = ['say \\": twice \\":', "a \\u0022: b", '"quoted": yes']
    for text in texts:
        body = chat_body(messages=[{"role": "user", "content": text}])
        assert check(jsonl(request("a", body))).warnings == []
    escaped_dup = b'{"custom_id":"a","method":"POST","url":"%s","body":%s,"x":"\\u0022:","x":1}' % (
        CHAT.encode(),
        orjson.dumps(chat_body()),
    )
    assert issues(check(jsonl(escaped_dup))) == [
        (1, "unknown_parameter", "x"),
        (1, "duplicate_key", "x"),
    ]
    # An escaped colon hides a colon from a count; the line still gets the exact test.
    masked = escaped_dup.replace(b'"\\u0022:"', b'"\\u003a"')
    assert issues(check(jsonl(masked))) == [
        (1, "unknown_parameter", "x"),
        (1, "duplicate_key", "x"),
    ]
