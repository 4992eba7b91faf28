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


def _ordinary_body(body_id: str, model: str) -> dict[str, Any]:
    """The schema of an ordinary body: its endpoint's (``body_id``), with the file's
    ``model``, not ``stream: true`` and no token cap below 1."""
    no_low_cap = {"not": {"type": "integer", "maximum": 0}}
    return {
        "$ref": body_id,
        "required": ["model"],
        "properties": {
            "model": {"const": model},
            "stream": {"not": {"const": True}},
            **dict.fromkeys(TOKEN_LIMIT_KEYS, no_low_cap),
        },
    }


@lru_cache(maxsize=32)
def block_validator(endpoint: Endpoint, model: str, long_custom_id: int) -> Any:
    """A compiled check of a list of records: is every one an ordinary valid request?

    Ordinary as the per-line fast path means it: exactly the four keys, a POST to the batch's
    url, a custom_id of 1 to ``long_custom_id`` characters, and an ordinary body
    (:func:`_ordinary_body`).
    """
    body = schemas.fast_schema(endpoint.schema)
    request = {
        "type": "object",
        "required": ["custom_id", "method", "url", "body"],
        "additionalProperties": False,
        "properties": {
            "custom_id": {"type": "string", "minLength": 1, "maxLength": long_custom_id},
            "method": {"const": "POST"},
            "url": {"const": endpoint.url},
            "body": _ordinary_body(body["$id"], model),
        },
    }
    return _array_validator(body, request)


@lru_cache(maxsize=32)
def body_validator(endpoint: Endpoint, model: str) -> Any:
    """A compiled check of a list of bodies: is every one an ordinary body of ``endpoint``
    (:func:`_ordinary_body`)?"""
    body = schemas.fast_schema(endpoint.schema)
    return _array_validator(body, _ordinary_body(body["$id"], model))


def _array_validator(body: dict[str, Any], item: dict[str, Any]) -> Any:
    """A compiled check that every element of a list is an ``item`` (which refers to the
    endpoint's ``body`` schema by its ``$id``): one call for a whole block."""
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"body": body},
            "type": "array",
            "items": item,
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
    if not _new_ids(seen, ids):
        return None
    inputs = _clean_bodies(endpoint, list(map(_BODY, records)))
    return None if inputs is None else (ids, inputs)


def clean_bodies(
    endpoint: Endpoint,
    model: str,
    long_custom_id: int,
    seen: Set[str],
    ids: list[str],
    bodies: list[Any],
    *,
    ids_are_new: bool = False,
) -> int | None:
    """What :func:`clean_records` answers for the requests that POST each of ``bodies`` to
    ``endpoint`` with the custom_id beside it in ``ids`` (strings): their embedding inputs,
    or ``None``.  The builder's check: it never makes the records.  ``ids_are_new``: the
    caller knows that no id is blank, none repeats and none is in ``seen`` (ids it made from
    positions no id was made from before), so that is not checked again."""
    if not ids or min(map(len, ids)) < 1 or max(map(len, ids)) > long_custom_id:
        return None
    if not ids_are_new and not _new_ids(seen, ids):
        return None
    if not body_validator(endpoint, model).is_valid(bodies):
        return None
    return _clean_bodies(endpoint, bodies)


def _new_ids(seen: Set[str], ids: list[str]) -> bool:
    """No id blank, none twice, none used before (``seen``)."""
    return not any(map(str.isspace, ids)) and len(set(ids)) == len(ids) and seen.isdisjoint(ids)


def _clean_bodies(endpoint: Endpoint, bodies: list[dict[str, Any]]) -> int | None:
    """The rest of the checks for bodies the schema passed: no misspelled key; the embedding
    inputs, or ``None``."""
    known = schemas.open_properties(endpoint.schema)
    if known is not None:
        unknown = set().union(*bodies).difference(known)
        if any(schemas.close_key(key, known) for key in unknown):  # a misspelled key
            return None
    inputs: int = endpoint.count_all_inputs(bodies)
    return inputs


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
