"""Ordinary short request lines recognised by their bytes alone: no parse, no schema call.

Most lines of most files are a request as a JSON library writes it: the four keys in order,
the file's url and model, a few common parameters.  For the endpoints whose files are mostly
short lines (chat, completions, embeddings) a regular expression describes such lines byte
for byte, written from the endpoint's schema: only values the schema accepts, only strings
JSON allows, each key once.  A block of lines that all match is accounted for with the
custom_ids the expression captured (:func:`clean_lines`); any other block goes on to the parse
path (:mod:`batchkit.blocks`), which explains what it finds.

Like the other fast paths it only ever says "nothing to report": a line the expression
accepts is one the full checks find nothing in (tests/test_line_patterns.py builds lines
around every edge of each expression and compares the two).  What it cannot see in the bytes
it checks on the block: valid UTF-8, no raw line separator, no blank or repeated custom_id.

It pays on short lines only: ``re`` reads about 4 ns a byte, orjson parses about 2.5, but a
parse and a schema call cost about 2 microseconds a line whatever its length.  So blocks whose
lines are longer than :data:`LONGEST_AVERAGE` on average skip it, and after a block that does
not match the next :data:`SKIP_AFTER_MISS` blocks do too, so that a file it does not fit pays
little for trying.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Set
from functools import lru_cache
from typing import Any

import orjson

from batchkit import linechecks

#: Blocks whose lines average more bytes than this are parsed instead (measured on the
#: benchmark's files: ahead by a third at 300 B a line, behind by a tenth at 500 B).
LONGEST_AVERAGE = 400
#: After a block that does not match, this many blocks go straight to the parse path.
SKIP_AFTER_MISS = 8

_ESCAPE = (
    rb'\\["\\/bfnrt]'  # a short escape
    rb"|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4}"  # a \u escape that is not a surrogate
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
)
#: A JSON string: no raw control character, no lone surrogate.  Bytes from 0x80 up are left
#: to the block's UTF-8 check.
STRING = rb'"(?:[^"\\\x00-\x1f]++|' + _ESCAPE + rb')*+"'
#: A JSON string of at least one character.
NONEMPTY_STRING = rb'"(?:[^"\\\x00-\x1f]++|' + _ESCAPE + rb')++"'
#: An integer of 1 or more (a token cap: below 1 is worth a warning).
POSITIVE = rb"[1-9][0-9]{0,8}"
#: An integer orjson reads (it refuses those past 64 bits).
INTEGER = rb"-?(?:0|[1-9][0-9]{0,17}+)"


def _fraction(whole: bytes) -> bytes:
    return whole + rb"(?:\.[0-9]{1,12})?"


#: Numbers from 0 to 2, 0 to 1, and -2 to 2, written plainly (no exponent).
ZERO_TO_TWO = rb"(?:" + _fraction(rb"[01]") + rb"|2(?:\.0{1,12})?)"
ZERO_TO_ONE = rb"(?:" + _fraction(rb"0") + rb"|1(?:\.0{1,12})?)"
PENALTY = rb"-?" + ZERO_TO_TWO

#: The sampling parameters chat and completions share, with the values their schemas accept.
_SAMPLING = {
    "temperature": ZERO_TO_TWO,
    "top_p": ZERO_TO_ONE,
    "presence_penalty": PENALTY,
    "frequency_penalty": PENALTY,
    "seed": INTEGER,
    "user": STRING,
}
_CHAT_PARAMS = {"max_tokens": POSITIVE, "max_completion_tokens": POSITIVE, **_SAMPLING}
_COMPLETION_PARAMS = {"max_tokens": POSITIVE, **_SAMPLING, "suffix": STRING}
_EMBEDDING_PARAMS = {
    "encoding_format": rb'"(?:float|base64)"',
    "dimensions": POSITIVE,
    "user": STRING,
}


class _Grammar:
    """The pieces of a line as one writer spaces them: ``space`` after each ``,`` and ``:``
    (nothing, as compact writers do, or one space, as ``json.dumps`` does by default).  One
    expression per spacing: an optional space at every separator costs a quarter more."""

    def __init__(self, space: bytes) -> None:
        self.space = space

    def key(self, name: str) -> bytes:
        return b'"' + name.encode() + b'":' + self.space

    def comma(self) -> bytes:
        return b"," + self.space

    def items(self, item: bytes, at_most: str = "") -> bytes:
        """``[item, ...]``: one or more; with ``at_most`` a bound on the ones after the first."""
        repeat = rb"{0,%s}+" % at_most.encode() if at_most else rb"*+"
        return rb"\[" + item + rb"(?:" + self.comma() + item + rb")" + repeat + rb"\]"

    def params(self, values: dict[str, bytes]) -> bytes:
        """Any of the optional body keys, each at most once: a key's value may not be followed
        on its line by the same key (in a line that matches, ``"name":`` is only ever a key)."""
        choices = [
            self.comma() + self.key(name) + value + rb'(?![^\n]*"' + name.encode() + rb'":)'
            for name, value in values.items()
        ]
        return rb"(?:" + b"|".join(choices) + rb")*+"

    def body(self, model: bytes, main: str, value: bytes, params: dict[str, bytes]) -> bytes:
        """An object with ``model``, the endpoint's ``main`` key and optional ``params``:
        model first or second, the parameters anywhere after it."""
        optional = self.params(params)
        model_first = self.key("model") + model + optional + self.comma() + self.key(main) + value
        main_first = self.key(main) + value + self.comma() + self.key("model") + model
        return rb"\{(?:" + model_first + b"|" + main_first + rb")" + optional + rb"\}"

    def chat(self, model: bytes) -> bytes:
        message = (
            rb"\{"
            + self.key("role")
            + rb'"(?:system|developer|user|assistant)"'
            + self.comma()
            + self.key("content")
            + STRING
            + rb"\}"
        )
        response_format = rb"\{" + self.key("type") + rb'"(?:text|json_object)"\}'
        params = {**_CHAT_PARAMS, "response_format": response_format}
        return self.body(model, "messages", self.items(message), params)

    def completions(self, model: bytes) -> bytes:
        return self.body(model, "prompt", STRING, _COMPLETION_PARAMS)

    def embeddings(self, model: bytes) -> bytes:
        """The group holds an array of inputs (strings or token arrays), whose length counts;
        a string or one token array counts 1."""
        tokens = self.items(INTEGER)
        arrays = self.items(NONEMPTY_STRING, "2047") + b"|" + self.items(tokens, "2047")
        value = rb"(?:" + NONEMPTY_STRING + b"|" + tokens + rb"|(" + arrays + rb"))"
        return self.body(model, "input", value, _EMBEDDING_PARAMS)

    def line(self, url: str, model: str, long_custom_id: int) -> bytes | None:
        body = _BODIES.get(url)
        if body is None:
            return None
        return (
            rb"^\{"
            + self.key("custom_id")
            + rb'"([^"\\\x00-\x1f]{1,%d})"' % long_custom_id
            + self.comma()
            + self.key("method")
            + rb'"POST"'
            + self.comma()
            + self.key("url")
            + re.escape(orjson.dumps(url))
            + self.comma()
            + self.key("body")
            + body(self, re.escape(orjson.dumps(model)))
            + rb"\}$"
        )


#: The endpoints with an expression, and what writes their bodies'.
_BODIES: dict[str, Callable[[_Grammar, bytes], bytes]] = {
    "/v1/chat/completions": _Grammar.chat,
    "/v1/completions": _Grammar.completions,
    "/v1/embeddings": _Grammar.embeddings,
}

#: The spacings tried: compact first.
SPACINGS = (b"", b" ")


#: The expressions use possessive quantifiers (``*+``), which keep ``re`` from backtracking
#: through a long string; Python has them from 3.11.  Before, every block takes the parse path.
AVAILABLE = sys.version_info >= (3, 11)


@lru_cache(maxsize=32)
def line_pattern(
    url: str, model: str, long_custom_id: int, space: bytes = b""
) -> re.Pattern[bytes] | None:
    """The expression for the ordinary lines of ``url`` with ``model``, spaced with
    ``space`` (``None`` for an endpoint that has none, or before Python 3.11): one line, its
    custom_id captured (1 to ``long_custom_id`` bytes: never more characters), and for
    embeddings the arrays of inputs."""
    if not AVAILABLE:
        return None
    line = _Grammar(space).line(url, model, long_custom_id)
    return None if line is None else re.compile(line, re.MULTILINE)


class LinePatterns:
    """The pattern path of one validator: which blocks try it (see the module's note)."""

    def __init__(self) -> None:
        self._skip = 0
        self._space = SPACINGS[0]

    def clean_lines(
        self, url: str, model: str, long_custom_id: int, seen: Set[str], lines: list[bytes]
    ) -> tuple[list[str], int] | None:
        """The custom_ids and embedding inputs of ``lines`` (line ends stripped) when every
        one is an ordinary request with nothing to report; else ``None``."""
        if self._skip:
            self._skip -= 1
            return None
        if url not in _BODIES or not AVAILABLE:
            return None
        if sum(map(len, lines)) > LONGEST_AVERAGE * len(lines):  # before a compile (10-25 ms)
            return None
        joined = b"\n".join(lines)
        for space in (self._space, *(other for other in SPACINGS if other != self._space)):
            pattern = line_pattern(url, model, long_custom_id, space)
            assert pattern is not None  # every spacing has one where the first has
            found = pattern.findall(joined)
            if len(found) == len(lines):
                self._space = space  # the file's spacing: tried first from now on
                return clean_matches(found, joined, seen)
        self._skip = SKIP_AFTER_MISS
        return None


def clean_matches(found: list[Any], joined: bytes, seen: Set[str]) -> tuple[list[str], int] | None:
    """The ids and embedding inputs of lines that all matched (``found``: what ``findall``
    returned for ``joined``), when what the expression leaves to the block holds: valid UTF-8,
    no raw line separator, no blank id, no id used twice or before (``seen``)."""
    if not _readable(joined):
        return None
    if not found or isinstance(found[0], bytes):
        raw_ids, inputs = found, 0
    else:  # each match: the id, then the array groups (one of them, at most, not empty)
        raw_ids = [match[0] for match in found]
        arrays = [array for match in found for array in match[1:] if array]
        inputs = len(found) - len(arrays) + sum(map(len, map(orjson.loads, arrays)))
    ids = list(map(bytes.decode, raw_ids))
    if any(map(str.isspace, ids)) or len(set(ids)) != len(ids) or not seen.isdisjoint(ids):
        return None
    return ids, inputs


def _readable(joined: bytes) -> bool:
    """Valid UTF-8 with no raw line separator: what the expression leaves to the block."""
    if joined.isascii():
        return True
    if linechecks.has_line_separator(joined):
        return False
    try:
        joined.decode()
    except UnicodeDecodeError:
        return False
    return True
