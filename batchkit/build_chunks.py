"""The builder's fast path: a chunk of plain request bodies made into lines in a few calls.

Most builds are a list of bodies (``{"messages": ...}``) with the ids left to
:func:`~batchkit.build.default_custom_id`.  For such a chunk, :func:`plain_chunk` makes every
line at once (comprehensions and ``map``, no call per item into the builder) and checks what
the builder would check one item at a time: the build's model, a line that needs escaping,
a request too large for any file.  It changes no state and only ever answers "these lines,
nothing to report" or ``None`` (the builder then takes each item on its own, the one source
of every message).  The ids need no check: ids made from distinct positions are distinct, and
the builder keeps the positions until another id appears (see ``_Builder._explicit_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import orjson

from batchkit.linechecks import has_line_separator

_MISSING = object()
_LINE = orjson.OPT_APPEND_NEWLINE


@dataclass(frozen=True)
class Chunk:
    """The lines of a chunk of plain bodies, ready to be checked and written."""

    records: list[dict[str, Any]]
    lines: list[bytes]
    data: bytes
    embedding_inputs: int


def plain_chunk(
    items: list[Any],
    start: int,
    *,
    url: str,
    model: str | None,
    fill_model: bool,
    line_keys: frozenset[str],
    count_inputs: Any,
    max_bytes: int,
    max_inputs: int,
) -> Chunk | None:
    """``items`` (at positions ``start``...) as lines, when each is a plain body the build
    takes as it is (or with ``model`` filled in); else ``None``."""
    if model is None or set(map(type, items)) != {dict}:
        return None
    if not line_keys.isdisjoint(chain.from_iterable(items)):  # a full line, not a body
        return None
    count = len(items)
    models = set(map(dict.get, items, repeat("model", count), repeat(_MISSING, count)))
    if not models <= ({model, _MISSING} if fill_model else {model}):
        return None
    bodies = (
        [body if "model" in body else {"model": model, **body} for body in items]
        if _MISSING in models
        else items
    )
    records = [
        {"custom_id": f"request-{index + 1:06d}", "method": "POST", "url": url, "body": body}
        for index, body in enumerate(bodies, start=start)
    ]
    try:
        lines = [orjson.dumps(record, option=_LINE) for record in records]
    except orjson.JSONEncodeError:
        return None
    data = b"".join(lines)
    if has_line_separator(data) or max(map(len, lines)) > max_bytes:
        return None
    inputs = 0
    if count_inputs is not None:
        each = list(map(count_inputs, bodies))
        if max(each) > max_inputs:
            return None
        inputs = sum(each)
    return Chunk(records, lines, data, inputs)
