"""Reading the servers' JSON leniently, and quoting it briefly.

Providers add fields, send nulls and numbers as strings; a value of an unexpected type reads
as ``None`` rather than failing the call.  Both the API's answers (:mod:`batchkit.batches`)
and its error bodies (:mod:`batchkit.failures`) are read this way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_str", "snippet"]

#: How much of a body that is not a known shape goes into an error message.
_BODY_SNIPPET = 200


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def snippet(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SNIPPET else text[:_BODY_SNIPPET] + "..."
