"""Warnings: what a request its schema accepts may still get wrong.

The schemas allow keys of the provider's own, any token cap and any custom_id, and JSON
allows a key twice and a raw LINE SEPARATOR; each is legal and yet, on the server, a request
that does not do what was meant.  The validator asks these questions after the schema's verdict; the
functions that answer with no issue at all (:func:`low_token_limits`,
:func:`misspelled_keys`) are also its fast path's last test.
"""

from __future__ import annotations

from typing import Any

import orjson

from batchkit import linechecks, schemas
from batchkit.endpoints import Endpoint
from batchkit.issues import Issue

#: Body keys that cap the tokens a request may generate: below 1, it can generate nothing.
TOKEN_LIMIT_KEYS = ("max_tokens", "max_completion_tokens")


def low_token_limits(endpoint: Endpoint, body: dict[str, Any]) -> list[tuple[str, int]]:
    """The token caps below 1: the request can generate nothing (the server may refuse it).

    The spec allows 0 on /v1/completions, where with ``echo`` it scores a prompt: not flagged.
    """
    if TOKEN_LIMIT_KEYS[0] not in body and TOKEN_LIMIT_KEYS[1] not in body:
        return []
    low = [
        (key, value)
        for key in TOKEN_LIMIT_KEYS
        if type(value := body.get(key)) is int and value < 1
    ]
    if low and body.get("echo") is True and endpoint.url == "/v1/completions":
        low = [(key, value) for key, value in low if value < 0]
    return low


def misspelled_keys(endpoint: Endpoint, body: dict[str, Any]) -> list[tuple[str, str]]:
    """Unknown body keys close to a known one (``max_token``), with the known one.

    Unknown keys are allowed (providers add their own), so only a near miss is worth a word.
    """
    known = schemas.open_properties(endpoint.schema)
    if known is None or known.issuperset(body):
        return []
    return [
        (key, hint) for key in body if key not in known and (hint := schemas.close_key(key, known))
    ]


def body_warnings(endpoint: Endpoint, body: dict[str, Any], line: int) -> list[Issue]:
    """What a valid body may still get wrong: a misspelled parameter, no tokens to generate."""
    found = [
        Issue(
            line,
            "unknown_parameter",
            f"body.{key}",
            f"body.{key} is not a parameter of {endpoint.url}: did you mean {hint}? (the "
            "server ignores or refuses an unknown key)",
            severity="warning",
        )
        for key, hint in misspelled_keys(endpoint, body)
    ]
    found.extend(
        Issue(
            line,
            "max_tokens_below_one",
            f"body.{key}",
            f"body.{key} is {value}: the request can generate no tokens (the server refuses it "
            "or answers with nothing); use 1 or more, or leave it out for the model's default",
            severity="warning",
        )
        for key, value in low_token_limits(endpoint, body)
    )
    return found


def custom_id_warnings(custom_id: str, line: int, long_custom_id: int) -> list[Issue]:
    """An id some providers refuse (too long), or one that tools strip to nothing."""
    found: list[Issue] = []
    if len(custom_id) > long_custom_id:
        found.append(
            Issue(
                line,
                "long_custom_id",
                "custom_id",
                f"custom_id is {len(custom_id)} characters; some providers refuse more "
                f"than {long_custom_id}",
                severity="warning",
            )
        )
    if custom_id.isspace():
        found.append(
            Issue(
                line,
                "blank_custom_id",
                "custom_id",
                f"custom_id is only whitespace ({schemas.show(custom_id)}); results are "
                "matched to requests by it and tools strip it: give it visible characters",
                severity="warning",
            )
        )
    return found


def separator_issues(raw: bytes, record: dict[str, Any], line: int) -> list[Issue]:
    """A raw U+2028, U+2029 or U+0085 in the line: a bytes test first, then the path."""
    if not linechecks.has_line_separator(raw):
        return []
    found = linechecks.line_separators(record)
    if not found:
        return []
    more = f" (and {len(found) - 1} more strings on this line)" if len(found) > 1 else ""
    message = (
        f"{found[0].text} raw{more}: JSON allows it, but servers that split lines on Unicode "
        "line ends cut the request there; batchkit build --fix writes it escaped (\\u2028)"
    )
    return [Issue(line, "unicode_line_separator", found[0].param, message, severity="warning")]


def duplicate_key_issues(raw: bytes, record: dict[str, Any], line: int) -> list[Issue]:
    """Each key the line ``raw`` writes twice in one object (the parsed record kept one)."""
    if not linechecks.may_repeat_keys(raw, record):
        return []
    return [
        Issue(line, "duplicate_key", finding.param, finding.text, severity="warning")
        for finding in linechecks.repeated_keys(raw)
    ]


def dumps_or_empty(record: dict[str, Any]) -> bytes:
    """``record`` as orjson writes it, or nothing when it cannot be (the checks say why)."""
    try:
        return orjson.dumps(record)
    except (orjson.JSONEncodeError, TypeError):
        return b""
