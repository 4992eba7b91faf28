"""Property tests: no input makes the validator raise, and every line is accounted for."""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from batchkit import validate as validate_module
from batchkit import validate_file
from batchkit.validate import FileReport, Validator
from tests.helpers import COMPLETIONS, EMBEDDINGS, MODEL, SAMPLES, chat_body, request

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
    "blank_custom_id",
    "max_tokens_below_one",
    "duplicate_key",
    "unicode_line_separator",
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
    # the first line, or another endpoint: one invalid_url, not its body's errors as well.
    report = validate_file(io.BytesIO(b"".join(lines)))
    allowed = {"duplicate_custom_id", "invalid_url", "model_mismatch"}
    assert {i.code for i in report.errors} <= allowed


def report_without_fast_path(data: bytes) -> FileReport:
    validator = Validator()
    validator.fast_path = False
    for raw in io.BytesIO(data):
        validator.feed(raw)
    return validator.finish()


#: One small step away from a valid chat request each: what the fast path must not wave
#: through.  (key, value): set the key (``body.`` for a body key); (key, _DELETE): remove it.
_DELETE = object()
_PERTURBATIONS: list[tuple[str, object]] = [
    ("custom_id", ""),
    ("custom_id", "  "),
    ("custom_id", "x" * 64),
    ("custom_id", "y" * 65),
    ("custom_id", 7),
    ("custom_id", None),
    ("method", "GET"),
    ("url", "/chat/completions"),
    ("url", "/v1/chat/completion"),
    ("url", EMBEDDINGS),
    ("url", 3),
    ("body", "text"),
    ("body", {"model": MODEL, "input": "x"}),
    ("body", {"model": MODEL, "prompt": "x", "max_tokens": 0}),
    ("body", {"messages": []}),
    ("body.model", "other/model"),
    ("body.stream", True),
    ("body.stream", False),
    ("body.temperature", 3),
    ("body.max_token", 5),
    ("body.max_tokens", 0),
    ("body.max_completion_tokens", -1),
    ("body.messages", [{"role": "user", "content": "a\u2028b"}]),
    ("custom_id", _DELETE),
    ("method", _DELETE),
    ("url", _DELETE),
    ("body", _DELETE),
    ("extra", 1),
    ("duplicate key", None),
]


@st.composite
def near_valid_records(draw: st.DrawFn) -> bytes:
    """A valid request, or one with exactly one of :data:`_PERTURBATIONS`, with a fresh id.

    One step at a time, so that every way a line can differ from an ordinary request reaches
    the fast path often, rather than by a rare combination of draws.
    """
    record: dict[str, object] = request(f"id-{draw(st.integers(0, 10**9))}", chat_body())
    step = draw(st.none() | st.sampled_from(_PERTURBATIONS))
    duplicate = False
    if step is not None:
        key, value = step
        if key == "duplicate key":
            duplicate = True
        elif key.startswith("body."):
            body = dict(record["body"])  # type: ignore[call-overload]
            body[key.removeprefix("body.")] = value
            record["body"] = body
        elif value is _DELETE:
            del record[key]
        else:
            record[key] = value
    line = orjson.dumps(record)
    if duplicate:  # a key written twice, which parsing hides
        line = line.replace(b'"method":', b'"method":"GET","method":', 1)
    return line + b"\n"


@st.composite
def mixed_files(draw: st.DrawFn) -> bytes:
    """Valid sample lines and near-valid requests, in any order (ids repeat).

    Often after a valid chat request, which sets the batch endpoint and model: only then can
    the fast path answer for the near-valid chat requests that follow.
    """
    completions = orjson.dumps(request("c", {"model": MODEL, "prompt": "x"}, COMPLETIONS))
    line = st.one_of(
        st.sampled_from(VALID_LINES), near_valid_records(), st.just(completions + b"\n")
    )
    lines = draw(st.lists(line, min_size=1, max_size=15))
    if draw(st.booleans()):
        lines.insert(0, orjson.dumps(request("first")) + b"\n")
    return b"".join(lines)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_files(), mixed_files()))
def test_the_fast_path_reports_exactly_what_the_full_checks_report(data: bytes) -> None:
    assert validate_file(io.BytesIO(data)) == report_without_fast_path(data)


# -- every condition of the fast path is needed ----------------------------------------------
#
# The property above holds only if the inputs reach every condition of the fast path.  So each
# condition is switched off in turn (replaced by ``False`` in the source of
# ``Validator._passes_fast_path``) and Hypothesis must find a file on which the switched-off
# fast path and the full checks disagree.  A new condition that no generator exercises fails
# here: extend the generators.


def _fast_path_conditions() -> Iterator[tuple[int, int, str]]:
    function = ast.parse(textwrap.dedent(inspect.getsource(Validator._passes_fast_path)))
    ors = [n for n in ast.walk(function) if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or)]
    for which, node in enumerate(ors):
        for index, value in enumerate(node.values):
            yield which, index, ast.unparse(value)


def _without_condition(which: int, index: int) -> Callable[..., bool]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(Validator._passes_fast_path)))
    ors = [n for n in ast.walk(tree) if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or)]
    ors[which].values[index] = ast.Constant(False)
    namespace: dict[str, Any] = {}
    exec(
        compile(ast.fix_missing_locations(tree), "<mutant>", "exec"),
        vars(validate_module),
        namespace,
    )
    mutant: Callable[..., bool] = namespace["_passes_fast_path"]
    return mutant


def _disagree(data: bytes) -> bool:
    try:
        return validate_file(io.BytesIO(data)) != report_without_fast_path(data)
    except Exception:  # e.g. a type test switched off: the fast path then crashes
        return True


@pytest.mark.parametrize(
    ("which", "index", "condition"),
    list(_fast_path_conditions()),
    ids=[condition for _, _, condition in _fast_path_conditions()],
)
def test_each_fast_path_condition_is_caught_when_switched_off(
    which: int, index: int, condition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Validator, "_passes_fast_path", _without_condition(which, index))
    try:
        find(
            st.one_of(mutated_files(), mixed_files()),
            _disagree,
            settings=settings(
                max_examples=3000, phases=[Phase.generate], database=None, derandomize=True
            ),
        )
    except NoSuchExample:
        pytest.fail(f"no generated file needs the fast path's condition {condition!r}")
