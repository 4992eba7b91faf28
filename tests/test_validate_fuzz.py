"""Property tests: no input makes the validator raise, and every line is accounted for."""

from __future__ import annotations

import ast
import functools
import inspect
import io
import random
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from batchkit import request_rules, validate_file
from batchkit.endpoints import ENDPOINTS
from batchkit.validate import FileReport, Validator
from tests.helpers import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MODEL,
    SAMPLE_FILES,
    SAMPLES,
    chat_body,
    request,
)

VALID_LINES = [
    line
    for name in SAMPLE_FILES
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


def report_of(
    data: bytes, *, fast_path: bool, validator: type[Validator] = Validator
) -> FileReport:
    checker = validator()
    checker.fast_path = fast_path
    for raw in io.BytesIO(data):
        checker.feed(raw)
    return checker.finish()


def report_without_fast_path(data: bytes) -> FileReport:
    return report_of(data, fast_path=False)


class _CountingValidator(Validator):
    """A validator that counts the lines its fast path answered for, across files."""

    lines = 0
    fast = 0

    def _passes_fast_path(self, record: dict[str, Any], line: int) -> bool:
        passed = super()._passes_fast_path(record, line)
        _CountingValidator.lines += 1
        _CountingValidator.fast += passed
        return passed


#: One small step away from a valid request each: what the fast path must not wave through.
#: (key, value): set the key (``body.`` for a body key); (key, _DELETE): remove it.  Each
#: condition the fast path checks has a step that breaks it (tested below, each switched off).
_DELETE = object()
_EARLIER_ID = object()
_PERTURBATIONS: list[tuple[str, object]] = [
    ("custom_id", ""),
    ("custom_id", "  "),
    ("custom_id", "x" * 64),
    ("custom_id", "y" * 65),
    ("custom_id", 7),
    ("custom_id", None),
    ("custom_id", _EARLIER_ID),
    ("method", "GET"),
    ("url", "/chat/completions"),
    ("url", "/v1/chat/completion"),
    ("url", EMBEDDINGS),
    ("url", COMPLETIONS),
    ("url", 3),
    ("body", "text"),
    ("body", {"model": MODEL, "input": "x"}),
    ("body", {"model": MODEL, "prompt": "x", "max_tokens": 0}),
    ("body", {"messages": []}),
    ("body.model", "other/model"),
    ("body.model", 5),
    ("body.stream", True),
    ("body.stream", False),
    ("body.temperature", 3),
    ("body.max_token", 5),
    ("body.max_tokens", 0),
    ("body.max_completion_tokens", -1),
    ("body.messages", [{"role": "user", "content": "a\u2028b"}]),
    ("body.input", ""),
    ("body.prompt", 4.5),
    ("body.max_output_tokens", 15),
    ("body.text", {"format": {"type": "json"}}),
    ("body.images", [{}]),
    ("body.seconds", 4),
    ("custom_id", _DELETE),
    ("method", _DELETE),
    ("url", _DELETE),
    ("body", _DELETE),
    ("extra", 1),
    ("duplicate key", None),
]

#: A valid body for each endpoint, its text to be filled in.
_BODIES: dict[str, Callable[[str], dict[str, Any]]] = {
    CHAT: lambda text: chat_body(messages=[{"role": "user", "content": text}]),
    EMBEDDINGS: lambda text: {"model": MODEL, "input": text or "x"},
    COMPLETIONS: lambda text: {"model": MODEL, "prompt": text, "max_tokens": 16},
    "/v1/responses": lambda text: {"model": MODEL, "input": text, "max_output_tokens": 64},
    "/v1/moderations": lambda text: {"model": MODEL, "input": [text]},
    "/v1/images/generations": lambda text: {"model": MODEL, "prompt": text, "n": 1},
    "/v1/images/edits": lambda text: {
        "model": MODEL,
        "prompt": text or "x",
        "images": [{"file_id": "file-abc"}],
    },
    "/v1/videos": lambda text: {"model": MODEL, "prompt": text or "x", "seconds": "4"},
}


def test_every_endpoint_has_a_body_for_the_fast_path_property() -> None:
    assert set(_BODIES) == set(ENDPOINTS)


def perturbed(record: dict[str, Any], step: tuple[str, object], earlier_id: str) -> bytes:
    """``record`` as a line, with ``step`` of :data:`_PERTURBATIONS` applied."""
    key, value = step
    record = {**record, "body": dict(record["body"])}
    if key == "duplicate key":  # a key written twice, which parsing hides
        return orjson.dumps(record).replace(b'"method":', b'"method":"GET","method":', 1)
    target = record["body"] if key.startswith("body.") else record
    name = key.removeprefix("body.")
    if value is _DELETE:
        del target[name]
    else:
        target[name] = earlier_id if value is _EARLIER_ID else value
    return orjson.dumps(record)


def single_endpoint_file(
    endpoint: str, texts: list[str], steps: dict[int, tuple[str, object]]
) -> bytes:
    """A file of one endpoint and one model with unique ids, line ``n`` changed by ``steps[n]``."""
    lines = []
    for number, text in enumerate(texts):
        record = request(f"id-{number}", _BODIES[endpoint](text), endpoint)
        step = steps.get(number)
        lines.append(orjson.dumps(record) if step is None else perturbed(record, step, "id-0"))
    return b"".join(line + b"\n" for line in lines)


@st.composite
def mostly_valid_files(draw: st.DrawFn) -> bytes:
    """Ordinary batch files: one endpoint, one model, unique ids, valid lines but for a few
    (one in 16, never the first) that are one step of :data:`_PERTURBATIONS` away from valid.

    So most lines reach the fast path with its state set (endpoint, model, ids), which is where
    a condition it forgets would let a line through.  Which lines and which steps come from a
    seeded ``Random``, not from ``sampled_from``, whose draws favour the first items: every
    step is then as likely as any other (Hypothesis's own ``randoms()`` favours low numbers).
    """
    endpoint = draw(st.sampled_from(list(_BODIES)))
    texts = draw(st.lists(st.text(max_size=12), min_size=10, max_size=40))
    # Seeded by the file's text as well: Hypothesis draws the same few seeds often.
    chance = random.Random(repr((draw(st.integers(0, 2**32 - 1)), endpoint, texts)))
    steps = {  # the first line stays valid: it sets the endpoint and model the rest are held to
        number: chance.choice(_PERTURBATIONS)
        for number in range(1, len(texts))
        if chance.random() < 1 / 16
    }
    return single_endpoint_file(endpoint, texts, steps)


@st.composite
def mixed_files(draw: st.DrawFn) -> bytes:
    """Valid sample lines of the three endpoints and perturbed chat requests, any order (ids
    repeat): the fast path meeting a file whose endpoint or model it has not learnt yet."""
    records = st.builds(
        lambda number, step: perturbed(request(f"id-{number}"), step, "first") + b"\n",
        st.integers(0, 10**9),
        st.sampled_from(_PERTURBATIONS),
    )
    lines = draw(st.lists(st.sampled_from(VALID_LINES) | records, min_size=1, max_size=15))
    if draw(st.booleans()):
        lines.insert(0, orjson.dumps(request("first")) + b"\n")
    return b"".join(lines)


#: Deterministic in CI: the same examples on every run, no example database to consult.
_DETERMINISTIC = settings(
    derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
#: The share of lines the property must send through the fast path (measured, not assumed).
FAST_PATH_SHARE = 0.8


def fast_path_property(
    phases: tuple[Phase, ...] = tuple(Phase), examples: Sequence[bytes] = ()
) -> Callable[[], None]:
    """The property: on ordinary files the fast path reports exactly what the full checks do.

    ``examples`` are run first, whatever the generator draws.  The generated files are the
    same on every run of the same code, but not across changes elsewhere: Hypothesis mixes
    literals of the modules it finds loaded into its draws, so importing another module (as
    the whole suite does) changes them.  A claim that must hold on every run (the mutants
    below) rests on fixed examples, not on a lucky draw.
    """

    @settings(_DETERMINISTIC, max_examples=400, phases=phases)
    @given(mostly_valid_files())
    def agree(data: bytes) -> None:
        with_fast_path = report_of(data, fast_path=True, validator=_CountingValidator)
        assert with_fast_path == report_without_fast_path(data)

    for data in examples:
        agree = example(data)(agree)
    return agree  # type: ignore[no-any-return]


def test_the_fast_path_reports_exactly_what_the_full_checks_report() -> None:
    _CountingValidator.lines = _CountingValidator.fast = 0
    fast_path_property()()
    share = _CountingValidator.fast / _CountingValidator.lines
    assert share >= FAST_PATH_SHARE, (
        f"only {share:.0%} of {_CountingValidator.lines:,} lines took the fast path"
    )


@settings(_DETERMINISTIC, max_examples=200)
@given(st.one_of(mutated_files(), mixed_files()))
def test_the_fast_path_agrees_before_the_file_has_set_its_endpoint_and_model(data: bytes) -> None:
    assert validate_file(io.BytesIO(data)) == report_without_fast_path(data)


# -- every condition of the fast path is needed ----------------------------------------------
#
# The property above holds only if its inputs reach every condition of the fast path.  So each
# condition is switched off in turn (replaced by ``False`` in the source of
# ``Validator._passes_fast_path``), as are the mutants an audit found the suite missed, and a
# fixed set of files, each one step of :data:`_PERTURBATIONS` away from valid, must show the
# difference; the property itself must fail on each of them too.  A new condition that no
# perturbation breaks fails here: add one.

#: Each endpoint, each step, on the third line of four (after the file's state is set), and
#: on the first (before).
FIXED_FILES = [
    single_endpoint_file(endpoint, ["a", "b", "c", "d"], {at: step})
    for endpoint in _BODIES
    for step in _PERTURBATIONS
    for at in (2, 0)
]

#: The one-line bugs of issue 13's audit, as (name, source text, mutated text).
NAMED_MUTANTS = [
    (
        "no long custom_id warning",
        "not 0 < len(custom_id) <= self.limits.long_custom_id",
        "not 0 < len(custom_id)",
    ),
    (
        "extra top-level keys let through",
        "record.keys() != _REQUIRED_SET",
        "not _REQUIRED_SET <= record.keys()",
    ),
]


def _fast_path_tree() -> ast.Module:
    return ast.parse(textwrap.dedent(inspect.getsource(Validator._passes_fast_path)))


def _conditions(tree: ast.Module) -> list[tuple[ast.BoolOp, int]]:
    """Every operand of every ``or`` in the fast path: each is one condition it checks."""
    ors = [n for n in ast.walk(tree) if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or)]
    return [(node, index) for node in ors for index in range(len(node.values))]


def _compiled(tree: ast.Module) -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    code = compile(ast.fix_missing_locations(tree), "<mutant>", "exec")
    exec(code, vars(request_rules), namespace)  # the fast path's module
    mutant: Callable[..., bool] = namespace["_passes_fast_path"]
    return mutant


def _switched_off(which: int) -> Callable[..., bool]:
    tree = _fast_path_tree()
    node, index = _conditions(tree)[which]
    node.values[index] = ast.Constant(False)
    return _compiled(tree)


def _rewritten(source: str, mutated: str) -> Callable[..., bool]:
    text = textwrap.dedent(inspect.getsource(Validator._passes_fast_path))
    assert text.count(source) == 1, f"the fast path no longer reads {source!r}"
    return _compiled(ast.parse(text.replace(source, mutated)))


SWITCHES = [
    (f"off:{ast.unparse(node.values[index])}", which)
    for which, (node, index) in enumerate(_conditions(_fast_path_tree()))
]
MUTANTS: list[tuple[str, Callable[[], Callable[..., bool]]]] = [
    *((name, functools.partial(_switched_off, which)) for name, which in SWITCHES),
    *((name, functools.partial(_rewritten, old, new)) for name, old, new in NAMED_MUTANTS),
]


def _disagree(data: bytes) -> bool:
    try:
        return validate_file(io.BytesIO(data)) != report_without_fast_path(data)
    except Exception:  # e.g. a type test switched off: the fast path then crashes
        return True


def test_every_condition_of_the_fast_path_is_switched_off_below() -> None:
    assert len(SWITCHES) >= 14  # the conditions as they are now: a lost one is a lost guard


@pytest.mark.parametrize("make", [m for _, m in MUTANTS], ids=[name for name, _ in MUTANTS])
def test_each_fast_path_mutant_is_caught_on_the_fixed_files(
    make: Callable[[], Callable[..., bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not any(map(_disagree, FIXED_FILES))  # the real fast path: no difference
    monkeypatch.setattr(Validator, "_passes_fast_path", make())
    caught = [data for data in FIXED_FILES if _disagree(data)]
    assert caught, "no fixed file shows the difference: add a step to _PERTURBATIONS"


@pytest.mark.parametrize("make", [m for _, m in MUTANTS], ids=[name for name, _ in MUTANTS])
def test_the_property_fails_for_each_fast_path_mutant(
    make: Callable[[], Callable[..., bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The property, given the fixed files as explicit examples, fails on each mutant: every
    run, whatever Hypothesis draws besides (see :func:`fast_path_property`)."""
    monkeypatch.setattr(Validator, "_passes_fast_path", make())
    with pytest.raises(Exception):  # noqa: B017 (a failed assertion, or the mutant's crash)
        fast_path_property(phases=(Phase.explicit, Phase.generate), examples=FIXED_FILES)()
