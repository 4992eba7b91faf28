"""A file's totals against the limits: the validator's verdict and the build's fill.

Both sides of one rule live here so that they cannot drift apart: the validator calls a total
over a limit an error and one at or over the ``near_limit`` share a warning, and the build
fills each file only to just under that share (:func:`fill`), so that every file it writes
passes ``batchkit validate --strict``.  The comparison is the same, float for float.
"""

from __future__ import annotations

import math

from batchkit.issues import Issue
from batchkit.limits import Limits


def fill(limit: int, near_limit_ratio: float) -> int:
    """The most of a measure (requests, bytes, embedding inputs) the split puts in one file.

    The largest value under ``limit * near_limit_ratio``: the validator warns (``near_limit``)
    at or over that share, so a file filled to here passes ``validate --strict`` and keeps the
    rest (10% by default) as headroom.  With the default limits: 44,999 requests, 180 MiB less
    one byte, 44,999 embedding inputs.  The comparison is the validator's own (see
    :func:`total_issues`), float for float, so the two always agree.  Never more than
    ``limit`` itself (a ratio over 1 turns the warning off, not the limit).
    """
    return min(limit, math.ceil(limit * near_limit_ratio) - 1)


def total_issues(
    limits: Limits, requests: int, nbytes: int, embedding_inputs: int | None
) -> list[Issue]:
    """The file-level verdicts on a file's totals; ``embedding_inputs`` is ``None`` where the
    endpoint does not count them."""
    checks = [
        (requests, limits.max_requests, "too_many_tasks", "requests"),
        (nbytes, limits.max_bytes, "file_too_large", "bytes"),
    ]
    if embedding_inputs is not None:
        checks.append(
            (
                embedding_inputs,
                limits.max_embedding_inputs,
                "too_many_embedding_inputs",
                "embedding inputs",
            )
        )
    found: list[Issue] = []
    for value, limit, code, what in checks:
        if value > limit:
            found.append(
                Issue(
                    None,
                    code,
                    None,
                    f"the file has {value:,} {what}, over the limit of {limit:,}; split the file "
                    "(batchkit build splits at the limits)",
                )
            )
        elif value >= limit * limits.near_limit_ratio:
            found.append(
                Issue(
                    None,
                    "near_limit",
                    None,
                    f"the file has {value:,} {what}, {value / limit:.0%} of the limit of {limit:,}",
                    severity="warning",
                )
            )
    return found
