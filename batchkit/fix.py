"""``batchkit build --fix``: repair what needs no guessing, refuse the rest.

Repaired: a UTF-8 byte-order mark, ``\\r\\n`` line ends, blank lines, a JSON array instead of
lines, a missing ``method`` or ``url``, a url that only lacks ``/v1`` (or is otherwise plainly
the batch endpoint, see :func:`~batchkit.endpoints.suggest_endpoint`), and a missing
``custom_id`` (generated, never colliding with the file's own).  Not repaired: anything else
the validator finds (a line that is not JSON, a duplicate id, a body that breaks its schema).
Those are reported with their lines, exactly as ``batchkit validate`` reports them, and
nothing is written.

The file is read three times: to learn its ids and endpoint, to check the repaired requests,
and to write them through :func:`~batchkit.build.build_batch` (which splits at the limits).
A JSON array is read whole; lines are read one at a time.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batchkit.build import LINE_KEYS, BuildResult, ProgressFunction, build_batch
from batchkit.endpoints import ENDPOINTS, suggest_endpoint
from batchkit.errors import UsageError
from batchkit.limits import Limits, get_profile
from batchkit.validate import DEFAULT_MAX_ISSUES, UTF8_BOM, Issue, Validator, open_batch_file

#: Each kind of repair, in the order reports list them, with how a report names it.
CHANGES = {
    "byte_order_mark": "stripped the byte-order mark",
    "crlf": "turned \\r\\n line ends into \\n",
    "blank_lines": "dropped blank lines",
    "json_array": "turned a JSON array into lines",
    "method": "filled a missing method",
    "url": "filled a missing url",
    "url_corrected": "corrected the url to the batch endpoint",
    "custom_id": "generated a missing custom_id",
}

#: Warnings about what --fix repairs itself.
_REPAIRED_WARNINGS = {"blank_line", "byte_order_mark"}
_NO_LIMIT = 1 << 62


@dataclass
class FixResult:
    """What ``--fix`` did to one file; ``build`` is ``None`` when nothing was written."""

    path: str
    endpoint: str
    changes: dict[str, int]
    errors: list[Issue] = field(default_factory=list)
    errors_total: int = 0
    warnings: list[Issue] = field(default_factory=list)
    warnings_total: int = 0
    build: BuildResult | None = None

    @property
    def fixed(self) -> bool:
        return self.build is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "fixed": self.fixed,
            "endpoint": self.endpoint,
            "changes": self.changes,
            "errors": [issue.to_dict() for issue in self.errors],
            "errors_total": self.errors_total,
            "warnings": [issue.to_dict() for issue in self.warnings],
            "warnings_total": self.warnings_total,
            "build": self.build.to_dict() if self.build else None,
        }


def fix_file(
    path: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str],
    endpoint: str | None = None,
    limits: Limits | None = None,
    profile: str | None = None,
    overwrite: bool = False,
    max_issues: int = DEFAULT_MAX_ISSUES,
    progress: ProgressFunction | None = None,
) -> FixResult:
    """Repair the batch file ``path`` into ``output`` (split at the limits if it must be).

    ``endpoint`` fills missing urls; without it, the file's first url that names a known
    endpoint decides.  Returns a :class:`FixResult`; when the file has errors that cannot be
    repaired, ``errors`` lists them and nothing is written.
    """
    source = _Source(Path(path))
    limits = limits or get_profile(profile).limits
    existing_ids, first_url = _scan(source)
    if endpoint is None and first_url is not None:
        endpoint = first_url
    known = ", ".join(ENDPOINTS)
    if endpoint is None:
        raise UsageError(f"{path}: no line names a batch url: pass the endpoint ({known})")
    if endpoint not in ENDPOINTS:
        raise UsageError(f"unknown endpoint {endpoint!r}: choose one of {known}")

    # Pass 2: check every repaired request.  The file limits do not apply: the build splits.
    changes: Counter[str] = Counter()
    unlimited = limits.replace(
        max_requests=_NO_LIMIT, max_bytes=_NO_LIMIT, max_embedding_inputs=_NO_LIMIT
    )
    validator = Validator(endpoint, unlimited, path=str(path), max_issues=max_issues)
    for entry in _repaired(source, endpoint, existing_ids, changes):
        if isinstance(entry, bytes):
            validator.feed(entry)
        else:
            validator.check_record(entry, 0)
    report = validator.finish()
    warnings = [issue for issue in report.warnings if issue.code not in _REPAIRED_WARNINGS]
    hidden = sum(issue.code in _REPAIRED_WARNINGS for issue in report.warnings)
    result = FixResult(
        path=str(path),
        endpoint=endpoint,
        changes={kind: changes[kind] for kind in CHANGES if changes[kind]},
        errors=report.errors,
        errors_total=report.errors_total,
        warnings=warnings,
        warnings_total=report.warnings_total - hidden,
    )
    if not report.valid:
        return result

    # Pass 3: write the same repaired requests (the ids come out the same) through the builder.
    records = (
        entry
        for entry in _repaired(source, endpoint, existing_ids, Counter())
        if not isinstance(entry, bytes)
    )
    result.build = build_batch(
        records,
        endpoint=endpoint,
        output=output,
        limits=limits,
        overwrite=overwrite,
        progress=progress,
    )
    return result


class _Source:
    """The file's entries, as ``(number, raw_line)`` or, for a JSON array, its elements."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open_batch_file(path) as stream:
            head = stream.read(4096)
        self.bom = head.startswith(UTF8_BOM)
        self.array: list[Any] | None = None
        if head.removeprefix(UTF8_BOM).lstrip().startswith(b"["):
            try:
                whole = orjson.loads(path.read_bytes().removeprefix(UTF8_BOM))
            except orjson.JSONDecodeError:
                whole = None  # not one JSON document: perhaps lines, the first an array
            if isinstance(whole, list):
                self.array = whole

    def lines(self) -> Iterator[bytes]:
        with self.path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                yield raw.removeprefix(UTF8_BOM) if number == 1 else raw


def _scan(source: _Source) -> tuple[set[str], str | None]:
    """Pass 1: the file's own custom_ids, and the endpoint its first known url names."""
    ids: set[str] = set()
    first_url: str | None = None
    records = source.array if source.array is not None else _parsed_lines(source)
    for record in records:
        if not isinstance(record, dict):
            continue
        custom_id = record.get("custom_id")
        if isinstance(custom_id, str):
            ids.add(custom_id)
        url = record.get("url")
        if first_url is None and isinstance(url, str):
            first_url = suggest_endpoint(url)
    return ids, first_url


def _parsed_lines(source: _Source) -> Iterator[Any]:
    for raw in source.lines():
        try:
            yield orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue


def _repaired(
    source: _Source, endpoint: str | None, existing_ids: set[str], changes: Counter[str]
) -> Iterator[dict[str, Any] | bytes]:
    """Each entry repaired: a record, or the raw bytes of a line only the validator can judge.

    One entry per input line (or array element), so the validator's line numbers are the
    file's.  A blank line comes out as ``b"\\n"``: the validator counts it, the build drops it.
    """
    new_id = _IdMaker(existing_ids)
    if source.bom:
        changes["byte_order_mark"] += 1
    if source.array is not None:
        changes["json_array"] += 1
        for number, element in enumerate(source.array, start=1):
            if isinstance(element, dict):
                yield _repair(element, number, endpoint, new_id, changes)
            else:
                yield orjson.dumps(element)
        return
    for number, raw in enumerate(source.lines(), start=1):
        if raw.endswith(b"\r\n"):
            changes["crlf"] += 1
        if not raw.strip():
            changes["blank_lines"] += 1
            yield b"\n"
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield raw
            continue
        if isinstance(record, dict):
            yield _repair(record, number, endpoint, new_id, changes)
        else:
            yield raw


def _repair(
    record: dict[str, Any],
    number: int,
    endpoint: str | None,
    new_id: _IdMaker,
    changes: Counter[str],
) -> dict[str, Any]:
    """The record with what is missing filled in, keys in the usual order."""
    fixed = dict(record)
    if "custom_id" not in fixed:
        fixed["custom_id"] = new_id(number)
        changes["custom_id"] += 1
    if "method" not in fixed:
        fixed["method"] = "POST"
        changes["method"] += 1
    url = fixed.get("url")
    if endpoint is not None:
        if "url" not in fixed:
            fixed["url"] = endpoint
            changes["url"] += 1
        elif isinstance(url, str) and url != endpoint and suggest_endpoint(url) == endpoint:
            fixed["url"] = endpoint
            changes["url_corrected"] += 1
    ordered = {key: fixed[key] for key in LINE_KEYS if key in fixed}
    ordered.update((key, value) for key, value in fixed.items() if key not in LINE_KEYS)
    return ordered


class _IdMaker:
    """``request-000005`` for line 5, or ``request-000005-2``... if the file already uses it."""

    def __init__(self, existing: set[str]) -> None:
        self._taken = set(existing)

    def __call__(self, number: int) -> str:
        base = candidate = f"request-{number:06d}"
        suffix = 1
        while candidate in self._taken:
            suffix += 1
            candidate = f"{base}-{suffix}"
        self._taken.add(candidate)
        return candidate
