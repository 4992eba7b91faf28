"""Why a line is not a request object, in words that say what to do.

A line fails before any rule can judge it in a few ways: the file is not UTF-8 JSON Lines at
all (UTF-16, a UTF-8 byte-order mark, one pretty-printed document), a line's bytes are not
JSON (not UTF-8, ``NaN``, an array), or the JSON is not an object.  The validator, the build's
input reader and ``--fix`` meet the same mistakes, so the words are written once, here.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from batchkit import schemas
from batchkit.issues import Issue

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

#: Line 1 starts with a UTF-8 byte-order mark: the rest of the line is still read.
BOM_ISSUE = Issue(
    1,
    "byte_order_mark",
    None,
    "the file starts with a UTF-8 byte-order mark; save it as UTF-8 without "
    "BOM (batchkit build --fix strips it)",
)


def not_jsonl_issue(first_line: bytes) -> Issue | None:
    """The one error for a file whose first line shows it is not JSON Lines at all.

    UTF-16 text or one pretty-printed JSON document would otherwise be an error on every line;
    after this one, the validator only counts the rest.
    """
    if first_line.startswith(UTF16_BOMS):
        return Issue(
            None,
            "invalid_encoding",
            None,
            "the file is UTF-16; batch files must be UTF-8: convert it "
            "(e.g. iconv -f UTF-16 -t UTF-8) and validate again",
        )
    if first_line.strip() in (b"[", b"{"):
        return Issue(
            1,
            "invalid_json_line",
            None,
            "the file is one pretty-printed JSON document, not JSON Lines: a batch "
            "file needs one request object per line (batchkit build --fix converts "
            "it)",
        )
    return None


def parse_issue(raw: bytes, line: int, error: orjson.JSONDecodeError) -> Issue:
    """Why ``raw`` is not JSON, in words that say what to do (the build uses them too)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Issue(
            line,
            "invalid_encoding",
            None,
            f"bytes that are not UTF-8 at byte {bad.start + 1} of the line; save the file as UTF-8",
        )
    stripped = raw.lstrip()
    if any(word in raw for word in (b"NaN", b"Infinity")) and _mentions_non_finite(raw):
        hint = "NaN and Infinity are not JSON; use null or a number"
    elif stripped.startswith(b"["):
        hint = (
            "it looks like a JSON array, but a batch file needs one request object per line "
            "(batchkit build --fix converts it)"
        )
    else:
        hint = f"{error.msg} at column {error.colno}"
    return Issue(line, "invalid_json_line", None, f"this line is not valid JSON ({hint})")


def _mentions_non_finite(raw: bytes) -> bool:
    """NaN/Infinity outside a string: the parser stopped on it."""
    return re.search(rb"[:\[,]\s*-?(NaN|Infinity)\b", raw) is not None


def not_an_object(record: Any, line: int) -> Issue:
    """A line that is JSON, but not the one object a request must be."""
    kind = schemas.json_type(record)
    hint = ""
    if isinstance(record, list):
        hint = " (a JSON array: put each request on a line of its own; batchkit build --fix does)"
    return Issue(
        line,
        "invalid_json_line",
        None,
        f"this line is JSON but not an object (it is {kind}){hint}; each line must be one "
        "request object",
    )
