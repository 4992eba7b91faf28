"""The pattern path (batchkit/line_patterns.py): a line its expression accepts is one the full
checks find nothing in, and a file is reported exactly as the full checks report it.

Lines are built around every edge of the expressions: spacing, key order, each parameter's
values on both sides of its bounds, strings with every kind of escape and raw byte, ids that
are blank, long, repeated or escaped, keys written twice, bytes that are not UTF-8.
"""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchkit import line_patterns
from batchkit.line_patterns import LinePatterns, clean_matches, line_pattern
from batchkit.lines import read_blocks
from batchkit.validate import Validator, validate_file
from tests.helpers import CHAT, COMPLETIONS, EMBEDDINGS, MODEL
from tests.test_validate_fuzz import _DETERMINISTIC, report_without_fast_path

LONG_ID = 64

pytestmark = pytest.mark.skipif(
    not line_patterns.AVAILABLE, reason="the pattern path needs Python 3.11 (possessive *+)"
)

#: Raw JSON values per key: (valid, not valid or not ordinary), around each bound.
TO_TWO = [b"0", b"1", b"2", b"2.0", b"1.999", b"0.7"]
ODD_NUMBERS = [b"1e0", b"1.", b"01", b".5", b"1E2", b"null", b"true", b'"0.5"', b"-0", b"-1"]
POSITIVE = [b"1", b"16", b"128"]
ODD_INTEGERS = [b"0", b"-1", b"1.0", b"1e3", b"99999999999999999999", b"null", b"01"]
PARAM_VALUES: dict[str, tuple[list[bytes], list[bytes]]] = {
    "max_tokens": (POSITIVE, ODD_INTEGERS),
    "max_completion_tokens": (POSITIVE, ODD_INTEGERS),
    "temperature": (TO_TWO, [b"2.5", b"2.0000000001", *ODD_NUMBERS]),
    "top_p": ([b"0", b"1", b"0.25", b"1.0"], [b"1.5", b"1.01", *ODD_NUMBERS]),
    "presence_penalty": ([b"-2", b"-1.5", *TO_TWO], [b"-2.1", b"2.5", *ODD_NUMBERS]),
    "frequency_penalty": ([b"-2", b"0.5"], [b"3"]),
    "seed": (
        [b"0", b"-3", b"42", b"-9223372036854775808"],
        [b"18446744073709551616", b"99999999999999999999", b"1.5", b"null"],
    ),
    "user": ([b'""', b'"u-1"'], [b"1"]),
    "suffix": ([b'"end"'], [b"null"]),
    "response_format": (
        [b'{"type":"json_object"}', b'{"type":"text"}'],
        [b'{"type":"json_schema"}', b'{"type":"json"}', b"{}"],
    ),
    "encoding_format": ([b'"float"', b'"base64"'], [b'"int8"']),
    "dimensions": (POSITIVE, ODD_INTEGERS),
    "stream": ([], [b"false", b"true"]),
    "n": ([], [b"1", b"2"]),
    "echo": ([], [b"true"]),
    "max_token": ([], [b"16"]),  # a misspelling
    "x_vendor": ([], [b"1"]),  # a key of the provider's own
}
#: Pieces of string contents: (what JSON and UTF-8 allow, what they refuse or servers split).
TEXT_PIECES = (
    [
        b"hello",
        b" ",
        b"caf\xc3\xa9",
        "東京".encode(),
        "😀".encode(),
        b"\\n",
        b'\\"',
        b"\\\\",
        b"\\/",
        b"\\u00e9",
        b"\\u2028",
        b"\\u0000",
        b"\\ud83d\\ude00",
        b"\x7f",
        b"max_tokens",
    ],
    [
        b"\\ud800",
        b"\\udc00",
        b"\\ude00\\ud83d",
        b"\\x",
        b"\\U0041",
        "\u2028".encode(),
        "\u2029".encode(),
        "\u0085".encode(),
        b"\x01",
        b"\x1f",
        b"\t",
        b"\xff",
        b"\xe2\x80",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b'"',
    ],
)
IDS = (
    [b"x" * 64, "é".encode() * 32, b"\xe6\x9d\xb1-1"],
    [
        b"",
        b"  ",
        "\u3000".encode(),
        b"y" * 65,
        "é".encode() * 33,
        b'a\\"b',
        b"\\u0041",
        b"tab\there",
        b"first",
    ],
)
ROLES = ([b"system", b"developer", b"user", b"assistant"], [b"tool", b"function", b"User"])
VALID_NAMES = {
    CHAT: [
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "user",
        "response_format",
    ],
    COMPLETIONS: ["max_tokens", "temperature", "top_p", "presence_penalty", "seed", "suffix"],
    EMBEDDINGS: ["encoding_format", "dimensions", "user"],
}
ODD_NAMES = ["stream", "n", "echo", "max_token", "x_vendor"]


@st.composite
def edge_lines(draw: st.DrawFn, url: str) -> bytes:
    """One request line of ``url`` near the edges of its expression: tame (every part drawn
    from what is valid and ordinary, each key once) or wild (anything from the lists)."""
    tame = draw(st.booleans())

    def pick(choices: tuple[list[bytes], list[bytes]]) -> bytes:
        valid, odd = choices
        return draw(st.sampled_from(valid if tame or not odd else valid + odd))

    spacing = draw(st.sampled_from(["compact", "spaced"] if tame else ["mixed", "odd", "compact"]))

    def sep(mark: bytes) -> bytes:
        if spacing == "compact":
            return mark
        if spacing == "spaced":
            return mark + b" "
        if spacing == "mixed":
            return mark + draw(st.sampled_from([b"", b" "]))
        return draw(st.sampled_from([b"", b" ", b"\t", b"  "])) + mark + b" "

    def obj(pairs: list[tuple[bytes, bytes]]) -> bytes:
        return b"{" + sep(b",").join(b'"' + k + b'"' + sep(b":") + v for k, v in pairs) + b"}"

    def text() -> bytes:
        return b"".join(pick(TEXT_PIECES) for _ in range(draw(st.integers(0, 4))))

    def string() -> bytes:
        return b'"' + text() + b'"'

    if url == CHAT:
        messages = [
            obj(
                [
                    (b"role", b'"' + pick(ROLES) + b'"'),
                    (b"content", pick(([string()], [b"null", b"[]"]))),
                ][:: 1 if tame else draw(st.sampled_from([1, 1, -1]))]
            )
            for _ in range(draw(st.integers(1 if tame else 0, 3)))
        ]
        main = (b"messages", b"[" + sep(b",").join(messages) + b"]")
    elif url == COMPLETIONS:
        main = (b"prompt", pick(([string()], [b'["a"]', b"null"])))
    else:
        strings = [b'"' + text() + b'"' for _ in range(draw(st.integers(0, 3)))]
        array = b"[" + sep(b",").join(strings) + b"]"
        many = b"[" + b",".join([b'"a"'] * draw(st.sampled_from([2048, 2049]))) + b"]"
        inputs = (
            [string(), array, b"[1, 2,3]", b"[[1,2],[3]]", b'["a", "b"]'],
            [b"[[]]", b'[1,"a"]', b"[]", many],
        )
        main = (b"input", pick(inputs))
    names = VALID_NAMES[url] if tame else VALID_NAMES[url] + ODD_NAMES
    chosen = draw(st.lists(st.sampled_from(names), max_size=3, unique=tame))  # wild: repeats
    params = [(name.encode(), pick(PARAM_VALUES[name])) for name in chosen]
    model = (b"model", b'"' + pick(([MODEL.encode()], [b"other-model"])) + b'"')
    body = [model, main, *params]
    orders = ["model first", "main first", "params between"]
    order = draw(st.sampled_from(orders if tame else [*orders, "shuffled"]))
    if order == "main first":
        body = [main, model, *params]
    elif order == "params between":
        body = [model, *params, main]
    elif order == "shuffled":
        body = draw(st.permutations(body))
    custom_id = pick(([b"req-%d" % draw(st.integers(0, 10**6)), *IDS[0]], IDS[1]))
    envelope = [
        (b"custom_id", b'"' + custom_id + b'"'),
        (b"method", pick(([b'"POST"'], [b'"GET"']))),
        (b"url", b'"' + url.encode() + b'"'),
        (b"body", obj(body)),
    ]
    if not tame and draw(st.integers(0, 9)) == 0:
        envelope = draw(st.permutations(envelope))
    return obj(envelope)


def first_line(url: str) -> bytes:
    """A valid line that sets the file's endpoint and model (its id is ``first``)."""
    body: dict[str, Any] = {
        CHAT: {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        COMPLETIONS: {"model": MODEL, "prompt": "hi"},
        EMBEDDINGS: {"model": MODEL, "input": "hi"},
    }[url]
    return orjson.dumps({"custom_id": "first", "method": "POST", "url": url, "body": body})


def accepted(url: str, line: bytes) -> bool:
    """Would the pattern path answer for ``line`` after :func:`first_line` (whatever its
    length: the length gate only chooses the faster path)?"""
    for space in line_patterns.SPACINGS:
        pattern = line_pattern(url, MODEL, LONG_ID, space)
        assert pattern is not None
        found = pattern.findall(line)
        if len(found) == 1:
            return clean_matches(found, line, {"first"}) is not None
    return False


def issues_on_line_two(url: str, line: bytes) -> list[Any]:
    report = report_without_fast_path(first_line(url) + b"\n" + line + b"\n")
    return [issue for issue in report.errors + report.warnings if issue.line != 1]


COUNTS = {"accepted": 0, "refused": 0}


@settings(_DETERMINISTIC, max_examples=1500)
@given(
    st.sampled_from([CHAT, COMPLETIONS, EMBEDDINGS]).flatmap(
        lambda url: st.tuples(st.just(url), edge_lines(url))
    )
)
def test_a_line_the_pattern_accepts_has_nothing_to_report(case: tuple[str, bytes]) -> None:
    url, line = case
    if accepted(url, line):
        COUNTS["accepted"] += 1
        assert issues_on_line_two(url, line) == [], line
    else:
        COUNTS["refused"] += 1


def test_the_edge_lines_reach_both_sides_of_the_patterns() -> None:
    COUNTS.update(accepted=0, refused=0)
    test_a_line_the_pattern_accepts_has_nothing_to_report()
    total = COUNTS["accepted"] + COUNTS["refused"]
    assert COUNTS["accepted"] >= total // 4, COUNTS  # the property is not vacuous
    assert COUNTS["refused"] >= total // 4, COUNTS


@settings(_DETERMINISTIC, max_examples=300)
@given(
    st.sampled_from([CHAT, COMPLETIONS, EMBEDDINGS]).flatmap(
        lambda url: st.tuples(st.just(url), st.lists(edge_lines(url), min_size=1, max_size=70))
    )
)
def test_files_of_edge_lines_are_reported_as_the_full_checks_report_them(
    case: tuple[str, list[bytes]],
) -> None:
    url, lines = case
    data = first_line(url) + b"\n" + b"\n".join(lines) + b"\n"
    assert validate_file(io.BytesIO(data)) == report_without_fast_path(data)


# -- fixed lines: each edge on its own (they catch a pattern that loses one of its guards) ----


def chat_line(body: str = '"messages":[{"role":"user","content":"hi"}]', **parts: str) -> bytes:
    custom_id = parts.get("custom_id", '"req-1"')
    text = '{"custom_id":%s,"method":"POST","url":"%s","body":{"model":"%s",%s}}'
    return (text % (custom_id, CHAT, MODEL, body)).encode()


ACCEPTED = {
    "compact": chat_line(),
    "json.dumps with its default spacing": json.dumps(
        orjson.loads(chat_line(body='"messages":[{"role":"user","content":"caf\\u00e9"}]'))
    ).encode(),
    "parameters": chat_line(
        body='"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],'
        '"max_tokens":16,"temperature":2.0,"top_p":1,"seed":-3,'
        '"response_format":{"type":"json_object"}'
    ),
    "a parameter before messages": chat_line(
        body='"temperature":0.5,"messages":[{"role":"user","content":"q"}]'
    ),
    "a surrogate pair and escapes": chat_line(
        body='"messages":[{"role":"user","content":"\\ud83d\\ude00 \\n\\"\\\\\\/ \\u2028"}]'
    ),
    "raw UTF-8": chat_line(body='"messages":[{"role":"user","content":"東京 😀"}]'),
    "an id of 64 characters": chat_line(custom_id='"' + "x" * 64 + '"'),
}
REFUSED = {
    "a key twice": chat_line(body='"messages":[{"role":"user","content":"q"}],"seed":1,"seed":2'),
    "a token cap of 0": chat_line(body='"messages":[{"role":"user","content":"q"}],"max_tokens":0'),
    "a temperature over 2": chat_line(
        body='"messages":[{"role":"user","content":"q"}],"temperature":2.5'
    ),
    "a top_p over 1": chat_line(body='"messages":[{"role":"user","content":"q"}],"top_p":1.5'),
    "a lone high surrogate": chat_line(body='"messages":[{"role":"user","content":"\\ud800"}]'),
    "a lone low surrogate": chat_line(body='"messages":[{"role":"user","content":"\\udc00"}]'),
    "a raw control character": chat_line(body='"messages":[{"role":"user","content":"a\x01"}]'),
    "a reversed surrogate pair": chat_line(
        body='"messages":[{"role":"user","content":"\\ude00\\ud83d"}]'
    ),
    "two high surrogates": chat_line(
        body='"messages":[{"role":"user","content":"\\ud83d\\ud83d"}]'
    ),
    "an unknown escape": chat_line(body='"messages":[{"role":"user","content":"\\x41"}]'),
    "a penalty under -2": chat_line(
        body='"messages":[{"role":"user","content":"q"}],"presence_penalty":-2.5'
    ),
    "a penalty of 3": chat_line(
        body='"messages":[{"role":"user","content":"q"}],"frequency_penalty":3'
    ),
    "a raw line separator": chat_line(body='"messages":[{"role":"user","content":"a\u2028b"}]'),
    "bytes that are not UTF-8": chat_line().replace(b"hi", b"h\xffi"),
    "a blank id": chat_line(custom_id='"   "'),
    "an id of 65 characters": chat_line(custom_id='"' + "y" * 65 + '"'),
    "a tool message": chat_line(body='"messages":[{"role":"tool","content":"q"}]'),
    "no messages": chat_line(body='"messages":[]'),
    "stream": chat_line(body='"messages":[{"role":"user","content":"q"}],"stream":true'),
    "a misspelled key": chat_line(body='"messages":[{"role":"user","content":"q"}],"max_token":5'),
}


#: Valid lines the patterns leave to the parse path: rare shapes, or values orjson reads
#: otherwise than it seems (an integer past 64 bits becomes a float).
LEFT_TO_THE_PARSE_PATH = {
    "a seed past 64 bits": chat_line(
        body='"messages":[{"role":"user","content":"q"}],"seed":99999999999999999999'
    ),
    "an exponent": chat_line(body='"messages":[{"role":"user","content":"q"}],"temperature":1e0'),
    "a name on a message": chat_line(body='"messages":[{"role":"user","content":"q","name":"a"}]'),
    "content parts": chat_line(
        body='"messages":[{"role":"user","content":[{"type":"text","text":"q"}]}]'
    ),
}


@pytest.mark.parametrize("name", LEFT_TO_THE_PARSE_PATH)
def test_rarer_valid_lines_are_left_to_the_parse_path(name: str) -> None:
    line = LEFT_TO_THE_PARSE_PATH[name]
    assert not accepted(CHAT, line), name
    assert issues_on_line_two(CHAT, line) == [], name


@pytest.mark.parametrize("name", ACCEPTED)
def test_ordinary_lines_are_accepted(name: str) -> None:
    line = ACCEPTED[name]
    assert accepted(CHAT, line), name
    assert issues_on_line_two(CHAT, line) == []


@pytest.mark.parametrize("name", REFUSED)
def test_each_edge_is_refused_and_reported(name: str) -> None:
    line = REFUSED[name]
    assert not accepted(CHAT, line), name
    assert issues_on_line_two(CHAT, line), name


def test_embedding_inputs_counted_from_the_pattern() -> None:
    bodies = [
        {"model": MODEL, "input": "one"},
        {"model": MODEL, "input": ["a", "b", "c"]},
        {"model": MODEL, "input": [1, 2, 3]},
        {"model": MODEL, "input": [[1, 2], [3], [4]]},
        {"model": MODEL, "input": ["x"] * 2048},
    ]
    lines = [
        orjson.dumps({"custom_id": f"e{n}", "method": "POST", "url": EMBEDDINGS, "body": body})
        for n, body in enumerate(bodies)
    ]
    short = lines[:4]
    found = LinePatterns().clean_lines(EMBEDDINGS, MODEL, LONG_ID, set(), short)
    assert found == (["e0", "e1", "e2", "e3"], 1 + 3 + 1 + 3)
    data = b"\n".join(lines) + b"\n"
    assert validate_file(io.BytesIO(data)).embedding_inputs == 1 + 3 + 1 + 3 + 2048


def test_a_file_the_patterns_do_not_fit_is_tried_again_only_now_and_then() -> None:
    patterns = LinePatterns()
    odd = [chat_line(body='"messages":[{"role":"tool","content":"q"}]')] * 4
    assert patterns.clean_lines(CHAT, MODEL, LONG_ID, set(), odd) is None
    good = [chat_line(custom_id=f'"r{n}"') for n in range(4)]
    for _ in range(line_patterns.SKIP_AFTER_MISS):
        assert patterns.clean_lines(CHAT, MODEL, LONG_ID, set(), good) is None  # skipped
    assert patterns.clean_lines(CHAT, MODEL, LONG_ID, set(), good) is not None


def test_the_pattern_path_answers_for_a_file_of_short_lines() -> None:
    lines = [chat_line(custom_id=f'"r{n}"') for n in range(200)]
    validator = Validator()
    calls = []
    real = validator._patterns.clean_lines

    def spy(*args: Any) -> Any:
        calls.append(found := real(*args))
        return found

    validator._patterns.clean_lines = spy  # type: ignore[method-assign]
    data = b"\n".join(lines) + b"\n"
    validator.feed_items(read_blocks(io.BytesIO(data), validator.limits.max_bytes))
    report = validator.finish()
    assert report.valid and report.requests == 200
    assert calls and all(found is not None for found in calls)


def embeddings_line(value: str, custom_id: str = "e1") -> bytes:
    text = '{"custom_id":"%s","method":"POST","url":"%s","body":{"model":"%s","input":%s}}'
    return (text % (custom_id, EMBEDDINGS, MODEL, value)).encode()


@pytest.mark.parametrize(
    "value",
    ['""', '["a",""]', "[]", "[[]]", '[1,"a"]', "[" + ",".join(['"a"'] * 2049) + "]"],
)
def test_embedding_inputs_the_schema_refuses_are_refused(value: str) -> None:
    line = embeddings_line(value)
    assert not accepted(EMBEDDINGS, line)
    assert issues_on_line_two(EMBEDDINGS, line)


def test_ids_used_before_or_twice_and_a_bad_line_in_a_block_are_reported() -> None:
    good = [chat_line(custom_id=f'"r{n}"') for n in range(150)]
    cases = {
        "an id of an earlier block": [*good, chat_line(custom_id='"r3"')],
        "an id twice in a block": [*good[:100], chat_line(custom_id='"r99"'), *good[100:]],
        "one bad line in a block": [*good[:70], REFUSED["a tool message"], *good[70:]],
    }
    for name, lines in cases.items():
        data = b"\n".join(lines) + b"\n"
        report = validate_file(io.BytesIO(data))
        assert report == report_without_fast_path(data), name
        assert report.errors_total == 1, name


@pytest.mark.parametrize("url", [CHAT, "/v1/responses"])
def test_no_expression_is_compiled_for_a_file_it_would_not_answer(url: str) -> None:
    """Compiling one costs 10 to 25 ms: not for long lines, nor for an endpoint without one."""
    text = "a long question " * 40  # about 640 B a line: over LONGEST_AVERAGE
    body = (
        {"model": MODEL, "messages": [{"role": "user", "content": text}]}
        if url == CHAT
        else {"model": MODEL, "input": "q"}
    )
    data = b"".join(
        orjson.dumps({"custom_id": f"r{n}", "method": "POST", "url": url, "body": body}) + b"\n"
        for n in range(300)
    )
    line_pattern.cache_clear()
    try:
        assert validate_file(io.BytesIO(data)).valid
        assert line_pattern.cache_info().misses == 0
    finally:
        line_pattern.cache_clear()
