"""Reading the servers' JSON leniently, and quoting it briefly.

Providers add fields, send nulls and numbers as strings; a value of an unexpected type reads
as ``None`` rather than failing the call.  Both the API's answers (:mod:`batchkit.batches`)
and its error bodies (:mod:`batchkit.failures`) are read this way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_dict", "as_int", "as_str", "snippet"]

#: How much of a body that is not a known shape goes into an error message.
_BODY_SNIPPET = 200


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    """An int from an int, a float or a numeric string (orq sends ``"bytes": "123"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def snippet(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SNIPPET else text[:_BODY_SNIPPET] + "..."
