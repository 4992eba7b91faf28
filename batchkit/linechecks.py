"""Checks that need a line's bytes, not only the record parsed from them.

Two things are lost when a line is parsed: a key written twice in one object (the parser keeps
the last value without a word) and how a string was written (a LINE SEPARATOR raw or as the
escape ``\\u2028``).  Both matter on the server, so both are looked for here, each behind a
cheap test on the bytes that nearly every line passes; only a line that fails the test is
walked to find the JSON path to report.  The build's writer uses the same test to escape the
separators (:func:`escape_line_separators`), so what it writes never holds one raw.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from batchkit import schemas

#: Characters JSON allows raw in a string but a Unicode-aware line splitter (Python's
#: ``str.splitlines``, and so some servers) treats as a line end, cutting the request in two.
#: The other characters such a splitter breaks on are control characters, which JSON escapes.
LINE_SEPARATORS = {
    "\u2028": "U+2028 (LINE SEPARATOR)",
    "\u2029": "U+2029 (PARAGRAPH SEPARATOR)",
    "\u0085": "U+0085 (NEXT LINE)",
}
#: Their UTF-8 bytes.  In valid UTF-8 (orjson has checked it) these sequences can only be them.
_SEPARATOR_BYTES = tuple(char.encode() for char in LINE_SEPARATORS)
#: Each one's bytes and its JSON escape.
_SEPARATOR_ESCAPES = tuple(
    (raw, f"\\u{ord(char):04x}".encode())
    for char, raw in zip(LINE_SEPARATORS, _SEPARATOR_BYTES, strict=True)
)


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """Where a byte-level problem is: ``param`` is the JSON path, ``text`` says what is there."""

    param: str
    text: str


def path_text(path: Path) -> str:
    """``("body", "messages", 0)`` -> ``body.messages[0]``; ``()`` is the request itself."""
    if not path:
        return "the request object"
    return schemas.format_path(path[1:], root=str(path[0]))


def has_line_separator(raw: bytes) -> bool:
    """The fast test: does the line hold a raw U+2028, U+2029 or U+0085 anywhere?

    Most lines are ASCII, and most others hold neither lead byte (``\\xe2``, ``\\xc2``):
    single-byte searches (memchr), far cheaper than a search for the sequences themselves.
    """
    if raw.isascii():
        return False
    return (b"\xe2" in raw and (_SEPARATOR_BYTES[0] in raw or _SEPARATOR_BYTES[1] in raw)) or (
        b"\xc2" in raw and _SEPARATOR_BYTES[2] in raw
    )


def escape_line_separators(line: bytes) -> bytes:
    """``line`` with every raw U+2028, U+2029 and U+0085 written as its ``\\uXXXX`` escape.

    orjson writes them raw, as JSON allows, but a server that splits lines with a Unicode-aware
    splitter (Python's ``str.splitlines``) cuts the request there.  The other characters such a
    splitter breaks on (U+000B, U+000C, U+001C-U+001E) are control characters, which JSON
    escapes anyway.  The replacement is exact on bytes: in valid UTF-8, which orjson writes,
    these byte sequences can only be these characters, and they can only be inside strings.
    Nearly every line is answered by :func:`has_line_separator`'s fast test alone.
    """
    if not has_line_separator(line):
        return line
    for raw, escaped in _SEPARATOR_ESCAPES:
        if raw in line:
            line = line.replace(raw, escaped)
    return line


def line_separators(record: Any) -> list[Finding]:
    """Every string or key of ``record`` that holds a line separator raw, in document order."""
    found: list[Finding] = []
    for path, text, is_key in _strings(record):
        names = [name for char, name in LINE_SEPARATORS.items() if char in text]
        if names:
            where = f"the key {path_text(path)}" if is_key else path_text(path)
            found.append(Finding(path_text(path), f"{where} holds {' and '.join(names)}"))
    return found


def _strings(value: Any) -> Iterator[tuple[Path, str, bool]]:
    """Each string of a JSON value and each key, with its path; iterative (no depth limit)."""
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            yield path, item, False
        elif isinstance(item, dict):
            entries = list(item.items())
            for key, _ in entries:
                yield (*path, key), key, True
            stack.extend(((*path, key), child) for key, child in reversed(entries))
        elif isinstance(item, list):
            stack.extend(
                ((*path, index), child) for index, child in reversed(list(enumerate(item)))
            )


def may_repeat_keys(raw: bytes, record: Any) -> bool:
    """The fast test for a key written twice: True whenever one may be, rarely otherwise.

    The record written again compactly has no repeated key.  A line that is exactly that
    (batchkit's own files, orjson's, any compact writer's) is answered by one comparison.
    Otherwise colons are counted: one per key, plus the colons inside strings, which both
    writings hold alike, except where the line escapes one (``\\u003a``).  So a line with
    more colons than the record has more keys than it kept; a line with escaped colons goes
    to the exact test.
    """
    try:
        written = orjson.dumps(record)
    except orjson.JSONEncodeError:
        return True
    if raw.startswith(written) and len(raw) - len(written) <= 2:  # only a line end after it
        return False
    colons, kept = raw.count(b":"), written.count(b":")
    return colons > kept or b"\\u003" in raw


class _Pairs(list[tuple[str, Any]]):
    """An object as the key-value pairs it was written with, repeats included."""


def repeated_keys(raw: bytes) -> list[Finding]:
    """Every key written twice in one object of the line ``raw``, with the value kept."""
    try:
        tree = json.loads(raw, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):  # orjson parsed it; the standard parser gave up
        return []
    found: list[Finding] = []
    stack: list[tuple[Path, Any]] = [((), tree)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Pairs):
            kept = dict(item)
            for key, count in Counter(key for key, _ in item).items():
                if count > 1:
                    text = (
                        f"{path_text(path)} has the key {schemas.show(key)} {count} times; JSON "
                        f"parsers keep only the last value ({schemas.show(_plain(kept[key]), 30)})"
                        " and silently drop the others: remove the extra ones"
                    )
                    found.append(Finding(path_text((*path, key)), text))
            stack.extend(((*path, key), child) for key, child in reversed(item))
        elif isinstance(item, list):
            stack.extend(
                ((*path, index), child) for index, child in reversed(list(enumerate(item)))
            )
    return found


def _plain(value: Any) -> Any:
    """A parsed value with its objects as dicts again, to show it."""
    if isinstance(value, _Pairs):
        return {key: _plain(item) for key, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
