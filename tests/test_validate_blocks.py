"""The block path (batchkit/blocks.py): many lines answered at once, reporting exactly what the
full checks report, line for line, whatever falls where in a block."""

from __future__ import annotations

import inspect
import io
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchkit import blocks, validate_file
from batchkit import validate as validate_module
from batchkit.lines import LongLine, read_blocks, read_lines
from batchkit.validate import FileReport, Validator
from tests.helpers import CHAT, EMBEDDINGS, MODEL, chat_body, jsonl, request
from tests.test_lines import _Pipe
from tests.test_validate_fuzz import (
    _DETERMINISTIC,
    FIXED_FILES,
    mixed_files,
    mostly_valid_files,
    mutated_files,
    report_without_fast_path,
)

#: (block bytes, lines per block): the default, tiny blocks (lines longer than a block), and
#: blocks of a few lines (bad lines first, last and alone in a block).
SHAPES = [(1 << 18, 64), (64, 64), (1 << 12, 3), (1 << 12, 1), (1 << 12, 8)]


def report_in_blocks(data: bytes, block: int, lines: int) -> FileReport:
    validator = Validator()
    validator.feed_items(
        read_blocks(io.BytesIO(data), validator.limits.max_bytes, block=block, lines=lines)
    )
    return validator.finish()


def assert_same_in_every_shape(data: bytes) -> None:
    expected = report_without_fast_path(data)
    assert validate_file(io.BytesIO(data)) == expected
    for block, lines in SHAPES:
        assert report_in_blocks(data, block, lines) == expected, (block, lines)


@settings(_DETERMINISTIC, max_examples=300)
@given(st.one_of(mostly_valid_files(), mutated_files(), mixed_files()))
def test_blocks_report_exactly_what_the_full_checks_report(data: bytes) -> None:
    assert_same_in_every_shape(data)


@pytest.mark.parametrize("data", FIXED_FILES)
def test_each_step_away_from_valid_is_reported_as_the_full_checks_report_it(data: bytes) -> None:
    # Repeated: each file once more at the end, so that the step is inside a later block too.
    assert_same_in_every_shape(data)
    assert_same_in_every_shape(data + data.replace(b'"id-', b'"again-'))


def _lines(count: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps(request(f"r-{n}")) for n in range(start, start + count)]


def _file(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


BAD = orjson.dumps(request("bad", chat_body(temperature=9)))


@pytest.mark.parametrize("at", [1, 63, 64, 65, 127, 199])
def test_a_bad_line_first_last_or_inside_a_block_is_reported_on_its_line(at: int) -> None:
    lines = _lines(200)
    lines[at] = BAD
    data = _file(lines)
    report = validate_file(io.BytesIO(data))
    assert [(i.line, i.code) for i in report.errors] == [(at + 1, "invalid_request")]
    assert_same_in_every_shape(data)


def test_a_line_longer_than_a_block_and_a_last_line_without_a_line_end() -> None:
    long = orjson.dumps(
        request("long", chat_body(messages=[{"role": "user", "content": "x" * 5000}]))
    )
    data = _file([*_lines(5), long, *_lines(5, 5)]) + orjson.dumps(request("last"))
    report = validate_file(io.BytesIO(data))
    assert report.valid and report.requests == 12 and report.bytes == len(data)
    assert_same_in_every_shape(data)


def test_crlf_lines_are_valid_and_counted_with_their_line_ends() -> None:
    data = _file(_lines(100)).replace(b"\n", b"\r\n")
    report = validate_file(io.BytesIO(data))
    assert report.valid and not report.warnings and report.bytes == len(data)
    assert_same_in_every_shape(data)


def test_a_byte_order_mark_blank_lines_and_bad_json_inside_blocks() -> None:
    lines = _lines(150)
    lines[70] = b""
    lines[71] = b"   "
    lines[100] = b'{"custom_id": "x",'
    data = b"\xef\xbb\xbf" + _file(lines)
    report = validate_file(io.BytesIO(data))
    assert [(i.line, i.code) for i in report.warnings] == [(71, "blank_line"), (72, "blank_line")]
    assert [(i.line, i.code) for i in report.errors] == [
        (1, "byte_order_mark"),
        (101, "invalid_json_line"),
    ]
    assert_same_in_every_shape(data)


def test_keys_written_twice_or_spaced_out_in_an_otherwise_clean_block() -> None:
    lines = [orjson.loads(line) for line in _lines(120)]
    spaced = [line.decode() for line in _lines(120)]
    text = [s.replace('":', '": ').replace(',"', ', "') for s in spaced]  # json.dumps' style
    text[90] = text[90].replace('"method": "POST"', '"method": "GET", "method": "POST"')
    data = ("\n".join(text) + "\n").encode()
    report = validate_file(io.BytesIO(data))
    assert report.valid and len(lines) == report.requests
    assert [(i.line, i.code, i.param) for i in report.warnings] == [(91, "duplicate_key", "method")]
    assert_same_in_every_shape(data)


def test_ids_repeated_across_blocks_name_the_first_line() -> None:
    data = _file([*_lines(100), *_lines(3, 40)])
    report = validate_file(io.BytesIO(data))
    assert [(i.line, i.code) for i in report.errors] == [
        (101, "duplicate_custom_id"),
        (102, "duplicate_custom_id"),
        (103, "duplicate_custom_id"),
    ]
    assert "line 41" in report.errors[0].message
    assert_same_in_every_shape(data)


def test_embedding_inputs_are_counted_by_the_block_path() -> None:
    bodies = [{"model": MODEL, "input": ["a", "b", "c"]}, {"model": MODEL, "input": [1, 2, 3]}]
    data = jsonl(*(request(f"e-{n}", bodies[n % 2], EMBEDDINGS) for n in range(300)))
    report = validate_file(io.BytesIO(data))
    assert report.valid and report.embedding_inputs == 150 * 3 + 150
    assert_same_in_every_shape(data)


# -- every test of the block path is needed ----------------------------------------------------
#
# Each line of clean_block and block_validator that turns a block away is removed in turn
# (by its source text), and a file that needs that test must then be reported differently.

#: One line each, with a step only that line catches, on line 80 of 120 (inside a block).
_STEPS: dict[str, dict[str, Any]] = {
    "long custom_id": {"custom_id": "x" * 65},
    "blank custom_id": {"custom_id": "   "},
    "duplicate custom_id": {"custom_id": "r-3"},  # from an earlier block
    "duplicate in its block": {"custom_id": "r-70"},
    "extra top-level key": {"extra": 1},
    "method": {"method": "GET"},
    "url": {"url": "/v1/completions"},
    "model": {"body": chat_body(model="other")},
    "stream": {"body": chat_body(stream=True)},
    "token cap": {"body": chat_body(max_tokens=0)},
    "misspelled key": {"body": chat_body(max_token=5)},
    "body schema": {"body": chat_body(temperature=9)},
    "line separator": {"body": chat_body(messages=[{"role": "user", "content": "a\u2028b"}])},
    "key written twice": {},
}

#: (name, source text, mutated text, the step that must show it).
_BLOCK_MUTANTS = [
    ("no maxLength", '"maxLength": long_custom_id', '"maxLength": 10**9', "long custom_id"),
    ("no isspace", "not any(map(str.isspace, ids)) and ", "", "blank custom_id"),
    ("no set size", "len(set(ids)) == len(ids) and ", "", "duplicate in its block"),
    ("no seen ids", " and seen.isdisjoint(ids)", "", "duplicate custom_id"),
    ("extra keys", '"additionalProperties": False,', "", "extra top-level key"),
    ("no method", '"method": {"const": "POST"},', '"method": {},', "method"),
    ("no url", '"url": {"const": endpoint.url},', '"url": {},', "url"),
    ("no model", '"model": {"const": model},', "", "model"),
    ("no stream", '"stream": {"not": {"const": True}},', "", "stream"),
    ("no cap", "**dict.fromkeys(TOKEN_LIMIT_KEYS, no_low_cap),", "", "token cap"),
    (
        "no typo",
        "if any(schemas.close_key(key, known) for key in unknown):",
        "if False:",
        "misspelled key",
    ),
    ("no body", '"$ref": body_id,', "", "body schema"),
    ("always compact", "_written_compactly(records, joined))", "True)", "key written twice"),
    ("no separator", "if linechecks.has_line_separator(joined):", "if False:", "line separator"),
]


def _stepped(name: str) -> bytes:
    lines: list[Any] = [request(f"r-{n}") for n in range(120)]
    if name == "key written twice":
        lines[79] = orjson.dumps(lines[79]).replace(b'"method":', b'"method":"GET","method":')
    else:
        lines[79] = {**lines[79], **_STEPS[name]}
    return jsonl(*lines)


def _mutant(function: Callable[..., Any], source: str, mutated: str) -> Callable[..., Any]:
    text = textwrap.dedent(inspect.getsource(function))
    assert text.count(source) == 1, f"{function.__name__} no longer reads {source!r}"
    text = text.replace(source, mutated).replace("@lru_cache(maxsize=32)\n", "")
    namespace: dict[str, Any] = {}
    exec(compile(text, "<mutant>", "exec"), vars(blocks), namespace)
    mutant: Callable[..., Any] = namespace[function.__name__]
    return mutant


def test_each_step_is_reported_as_the_full_checks_report_it() -> None:
    for name in _STEPS:
        data = _stepped(name)
        report = validate_file(io.BytesIO(data))
        assert report.errors_total + report.warnings_total == 1, name
        assert report == report_without_fast_path(data), name


@pytest.mark.parametrize(
    ("name", "source", "mutated", "step"), _BLOCK_MUTANTS, ids=[m[0] for m in _BLOCK_MUTANTS]
)
def test_each_block_path_mutant_is_caught(
    name: str, source: str, mutated: str, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # block_validator is cached: with a mutated piece it must be built again, every time
    uncached = blocks.block_validator.__wrapped__
    monkeypatch.setattr(blocks, "block_validator", uncached)
    pieces = (
        uncached,
        blocks._ordinary_body,
        blocks.clean_records,
        blocks._new_ids,
        blocks._clean_bodies,
    )
    found = False
    for function in pieces:  # looked up in blocks
        if source in inspect.getsource(function):
            monkeypatch.setattr(blocks, function.__name__, _mutant(function, source, mutated))
            found = True
    if source in inspect.getsource(blocks.clean_block):  # imported by the validator
        monkeypatch.setattr(
            validate_module, "clean_block", _mutant(blocks.clean_block, source, mutated)
        )
        found = True
    assert found, f"no block-path function reads {source!r} any more"
    data = _stepped(step)
    assert validate_file(io.BytesIO(data)) != report_without_fast_path(data)


def test_a_dump_that_differs_sends_the_block_to_the_duplicate_key_gate() -> None:
    monkey_records = [orjson.loads(line) for line in _lines(3)]
    joined = b",".join(_lines(3))
    assert blocks._written_compactly(monkey_records, joined)
    assert not blocks._written_compactly(monkey_records, joined.replace(b":", b": ", 1))


def _items(stream: BinaryIO, max_line: int, block: int, lines: int) -> Iterator[Any]:
    for item in read_blocks(stream, max_line, block=block, lines=lines):
        if isinstance(item, list):
            yield from (line + b"\n" for line in item)
        else:
            yield item


@settings(max_examples=200)
@given(st.binary(max_size=600), st.integers(1, 5), st.sampled_from([8, 16, 50]))
def test_read_blocks_yields_the_lines_read_lines_yields(
    data: bytes, lines: int, block: int
) -> None:
    for max_line in (2 * block, 3 * block + 1, 10_000):
        expected = list(read_lines(io.BytesIO(data), max_line))
        assert list(_items(io.BytesIO(data), max_line, block, lines)) == expected
        pipe = io.BufferedReader(_Pipe(data))  # short reads, no seeking: stdin
        got = list(_items(pipe, max_line, block, lines))
        assert got == expected
        assert all(not isinstance(item, LongLine) or item.length > max_line for item in got)


def test_a_blocks_embedding_inputs_are_counted_as_each_line_counts_them() -> None:
    from batchkit.endpoints import ENDPOINTS, count_embedding_inputs

    inputs: list[Any] = ["a", ["a", "b"], [1, 2, 3], [[1], [2, 3]], ["x"] * 7, [5], [[4]]]
    bodies = [{"model": MODEL, "input": value} for value in inputs]
    endpoint = ENDPOINTS[EMBEDDINGS]
    assert endpoint.count_all_inputs(bodies) == sum(map(count_embedding_inputs, bodies)) == 15
    assert endpoint.count_all_inputs([]) == 0


def test_before_python_3_11_every_block_takes_the_parse_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batchkit import line_patterns

    monkeypatch.setattr(line_patterns, "AVAILABLE", False)
    line_patterns.line_pattern.cache_clear()
    try:
        assert line_patterns.line_pattern(CHAT, MODEL, 64) is None
        data = jsonl(*(request(f"r{n}") for n in range(200)))
        report = validate_file(io.BytesIO(data))
        assert report.valid and report.requests == 200
    finally:
        line_patterns.line_pattern.cache_clear()


def test_bodies_checked_together_answer_as_their_records_do() -> None:
    """Validator.check_bodies (the builder's) against check_records for the same requests."""

    def both(ids: list[str], bodies: list[Any], **options: Any) -> tuple[bool, bool]:
        records = [request(custom_id, body) for custom_id, body in zip(ids, bodies, strict=True)]
        lines = [orjson.dumps(record) for record in records]
        answers = []
        for check in ("records", "bodies"):
            validator = Validator()
            validator.check_record(request("first"), 100)  # learns the endpoint and model
            if check == "records":
                answers.append(validator.check_records(records, lines))
            else:
                size = sum(map(len, lines))
                answers.append(validator.check_bodies(ids, bodies, size, **options))
        return answers[0], answers[1]

    good = [chat_body(), chat_body(temperature=1)]
    assert both(["a", "b"], good) == (True, True)
    for ids in (["a", "a"], ["a", " "], ["a", "first"], ["a", "x" * 65], ["a", ""]):
        assert both(ids, good) == (False, False), ids
    for body in (chat_body(temperature=9), chat_body(stream=True), chat_body(max_token=5)):
        assert both(["a", "b"], [chat_body(), body]) == (False, False), body
    assert both(["a", "a"], good, ids_are_new=True) == (False, True)  # the caller vouched
