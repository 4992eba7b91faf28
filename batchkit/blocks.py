"""The validator's fast path for a whole block of lines: one answer for many ordinary lines.

A line costs the validator about what its checks cost plus a fixed toll of Python calls, and
on short lines the toll is most of it.  So :func:`clean_block` answers for a block of parsed
lines at once, with a few calls into compiled code: one schema call for every envelope and
body (:func:`block_validator`), set sizes for the custom_ids, one bytes search for the line
separators and one ``orjson.dumps`` for the duplicate-key gate.  It only ever says "nothing to
report" (:class:`CleanBlock`) or "look closer" (``None``): it never produces an issue, so the
per-line checks stay the one source of every message.  Each of its tests is at least as
strict as the per-line fast path's (``Validator._passes_fast_path``), which
tests/test_validate_blocks.py checks line for line against the full checks.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

import jsonschema_rs
import orjson

from batchkit import linechecks, schemas
from batchkit.endpoints import Endpoint
from batchkit.request_warnings import TOKEN_LIMIT_KEYS

_CUSTOM_ID = itemgetter("custom_id")
_BODY = itemgetter("body")


@dataclass(frozen=True)
class CleanBlock:
    """A block with nothing to report but, maybe, keys written twice.

    ``compact``: every line is exactly ``orjson.dumps`` of its record, so no line writes a key
    twice; otherwise the per-line duplicate-key gate must look at each line.
    """

    ids: list[str]
    embedding_inputs: int
    compact: bool


@lru_cache(maxsize=32)
def block_validator(endpoint: Endpoint, model: str, long_custom_id: int) -> Any:
    """A compiled check of a list of records: is every one an ordinary valid request?

    Ordinary as the per-line fast path means it: exactly the four keys, a POST to the batch's
    url, a custom_id of 1 to ``long_custom_id`` characters, a body its endpoint's schema
    accepts, with the file's ``model``, not ``stream: true`` and no token cap below 1.
    """
    body = schemas.fast_schema(endpoint.schema)
    no_low_cap = {"not": {"type": "integer", "maximum": 0}}
    request = {
        "type": "object",
        "required": ["custom_id", "method", "url", "body"],
        "additionalProperties": False,
        "properties": {
            "custom_id": {"type": "string", "minLength": 1, "maxLength": long_custom_id},
            "method": {"const": "POST"},
            "url": {"const": endpoint.url},
            "body": {
                "$ref": body["$id"],
                "required": ["model"],
                "properties": {
                    "model": {"const": model},
                    "stream": {"not": {"const": True}},
                    **dict.fromkeys(TOKEN_LIMIT_KEYS, no_low_cap),
                },
            },
        },
    }
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"body": body},
            "type": "array",
            "items": request,
        }
    )


def clean_records(
    endpoint: Endpoint, model: str, long_custom_id: int, seen: Set[str], records: list[Any]
) -> tuple[list[str], int] | None:
    """Whether ``records`` are all ordinary valid requests: their ids and embedding inputs.

    ``seen`` holds the custom_ids of the lines before.  ``None`` as soon as one test fails:
    the caller then looks at the records one at a time.
    """
    if not block_validator(endpoint, model, long_custom_id).is_valid(records):
        return None
    ids: list[str] = list(map(_CUSTOM_ID, records))
    if any(map(str.isspace, ids)) or len(set(ids)) != len(ids) or not seen.isdisjoint(ids):
        return None
    bodies: list[dict[str, Any]] = list(map(_BODY, records))
    known = schemas.open_properties(endpoint.schema)
    if known is not None:
        unknown = set().union(*bodies).difference(known)
        if any(schemas.close_key(key, known) for key in unknown):  # a misspelled key
            return None
    inputs = endpoint.count_all_inputs(bodies)
    return ids, inputs


def clean_block(
    endpoint: Endpoint,
    model: str,
    long_custom_id: int,
    seen: Set[str],
    lines: list[bytes],
    records: list[Any],
) -> CleanBlock | None:
    """Whether the ``lines`` (line ends stripped), parsed as ``records``, are all ordinary
    valid requests (:func:`clean_records`) with no raw line separator."""
    found = clean_records(endpoint, model, long_custom_id, seen, records)
    if found is None:
        return None
    joined = b",".join(lines)
    if linechecks.has_line_separator(joined):
        return None
    ids, inputs = found
    return CleanBlock(ids, inputs, _written_compactly(records, joined))


def _written_compactly(records: list[Any], joined: bytes) -> bool:
    """Is each line exactly ``orjson.dumps`` of its record?  One call for the whole block.

    ``joined`` is the lines joined by commas.  Each line was parsed on its own, so if the
    whole equals the records' dump, each line equals its own record's dump: a line shorter
    than its dump would be a complete JSON value that ends inside the dump's object, and one
    longer would hold its dump and then a comma, which is not JSON.
    """
    try:
        written = orjson.dumps(records)
    except orjson.JSONEncodeError:
        return False
    return len(written) == len(joined) + 2 and written.startswith(joined, 1)  # no copy
