"""``batchkit build --fix``: repair what needs no guessing, refuse the rest.

Repaired: a UTF-8 byte-order mark, ``\\r\\n`` line ends, blank lines, a JSON array instead of
lines, a missing ``method`` or ``url``, a method in the wrong case or with spaces (``"post"``),
a url that only lacks ``/v1`` (or is otherwise plainly the batch endpoint, see
:func:`~batchkit.endpoints.suggest_endpoint`), a missing ``custom_id`` (generated, never
colliding with the file's own), and raw U+2028, U+2029 and U+0085 (written escaped, as
:func:`~batchkit.build.build_batch` writes every file).  Not repaired: anything else the
validator finds (a line that is not JSON, a duplicate id, a body that breaks its schema, a
line longer than a whole file may hold).  Those are reported with their lines, exactly as
``batchkit validate`` reports them, and nothing is written.

The file is read three times: to learn its ids and endpoint, to check the repaired requests,
and to write them through :func:`~batchkit.build.build_batch` (which splits at the limits).
A JSON array is read whole; lines are read one at a time, each with a bound (the file byte
limit), so memory never grows with the longest line.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batchkit import linechecks
from batchkit.build import LINE_KEYS, BuildResult, ProgressFunction, build_batch
from batchkit.endpoints import ENDPOINTS, suggest_endpoint
from batchkit.errors import UsageError
from batchkit.issues import DEFAULT_MAX_ISSUES, Issue
from batchkit.limits import Limits, get_profile
from batchkit.lines import LongLine, open_binary, read_lines
from batchkit.parse_issues import UTF8_BOM
from batchkit.validate import Validator

#: Each kind of repair, in the order reports list them, with how a report names it.
CHANGES = {
    "byte_order_mark": "stripped the byte-order mark",
    "crlf": "turned \\r\\n line ends into \\n",
    "blank_lines": "dropped blank lines",
    "json_array": "turned a JSON array into lines",
    "method": "filled a missing method",
    "method_case": 'corrected the method to "POST"',
    "url": "filled a missing url",
    "url_corrected": "corrected the url to the batch endpoint",
    "custom_id": "generated a missing custom_id",
    "escaped_line_separators": "escaped U+2028/U+2029/U+0085 line separators",
}

#: Warnings about what --fix repairs itself.
_REPAIRED_WARNINGS = {"blank_line", "byte_order_mark", "unicode_line_separator"}
#: File-level verdicts on the file limits, which do not apply to --fix's input: the build splits.
_SPLIT_CODES = {"too_many_tasks", "file_too_large", "too_many_embedding_inputs", "near_limit"}


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
    limits = limits or get_profile(profile).limits
    source = _Source(Path(path), limits.max_bytes)
    existing_ids, first_url = _scan(source)
    if endpoint is None and first_url is not None:
        endpoint = first_url
    known = ", ".join(ENDPOINTS)
    if endpoint is None:
        raise UsageError(f"{path}: no line names a batch url: pass the endpoint ({known})")
    if endpoint not in ENDPOINTS:
        raise UsageError(f"unknown endpoint {endpoint!r}: choose one of {known}")

    # Pass 2: check every repaired request.  The file limits do not apply (the build splits):
    # their file-level verdicts are dropped, while a line too long for any file is an error.
    changes: Counter[str] = Counter()
    validator = Validator(endpoint, limits, path=str(path), max_issues=max_issues)
    for entry in _repaired(source, endpoint, existing_ids, changes):
        if isinstance(entry, bytes):
            validator.feed(entry)
        elif isinstance(entry, LongLine):
            validator.feed_too_long(entry.length)
        else:
            validator.check_record(entry, 0)
    report = validator.finish()
    errors = [issue for issue in report.errors if _applies(issue)]
    warnings = [issue for issue in report.warnings if _applies(issue)]
    result = FixResult(
        path=str(path),
        endpoint=endpoint,
        changes={kind: changes[kind] for kind in CHANGES if changes[kind]},
        errors=errors,
        errors_total=report.errors_total - (len(report.errors) - len(errors)),
        warnings=warnings,
        warnings_total=report.warnings_total - (len(report.warnings) - len(warnings)),
    )
    if result.errors_total:
        return result

    # Pass 3: write the same repaired requests (the ids come out the same) through the builder.
    records = (
        entry
        for entry in _repaired(source, endpoint, existing_ids, Counter())
        if isinstance(entry, dict)
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


def _applies(issue: Issue) -> bool:
    """Whether ``issue`` of the input stands for its repaired output too."""
    if issue.line is None:
        return issue.code not in _SPLIT_CODES
    return issue.code not in _REPAIRED_WARNINGS


class _Source:
    """The file's entries: its lines (bounded by ``max_line``) or, for a JSON array, its
    elements."""

    def __init__(self, path: Path, max_line: int) -> None:
        self.path = path
        self.max_line = max_line
        with open_binary(path) as stream:
            head = stream.read(4096)
        self.bom = head.startswith(UTF8_BOM)
        self.array: list[Any] | None = None
        #: A JSON array's bytes hold a raw line separator somewhere.
        self.array_separators = False
        if head.removeprefix(UTF8_BOM).lstrip().startswith(b"["):
            data = path.read_bytes().removeprefix(UTF8_BOM)
            try:
                whole = orjson.loads(data)
            except orjson.JSONDecodeError:
                whole = None  # not one JSON document: perhaps lines, the first an array
            if isinstance(whole, list):
                self.array = whole
                self.array_separators = linechecks.has_line_separator(data)

    def lines(self) -> Iterator[bytes | LongLine]:
        """Each line; one longer than ``max_line`` only by its length (never held whole)."""
        with open_binary(self.path) as stream:
            for number, raw in enumerate(read_lines(stream, self.max_line), start=1):
                if number == 1 and isinstance(raw, bytes):
                    raw = raw.removeprefix(UTF8_BOM)
                yield raw


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
        if isinstance(raw, LongLine):
            continue
        try:
            yield orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue


def _repaired(
    source: _Source, endpoint: str | None, existing_ids: set[str], changes: Counter[str]
) -> Iterator[dict[str, Any] | bytes | LongLine]:
    """Each entry repaired: a record, or the raw bytes (or only the length, of a line too long
    to hold) of a line only the validator can judge.

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
                # Which element held it raw (not as an escape) is lost in parsing: an element
                # that holds one, in a file that holds one raw, is counted.
                if source.array_separators and linechecks.line_separators(element):
                    changes["escaped_line_separators"] += 1
                yield _repair(element, number, endpoint, new_id, changes)
            else:
                yield orjson.dumps(element)
        return
    for number, raw in enumerate(source.lines(), start=1):
        if isinstance(raw, LongLine):
            yield raw
            continue
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
            if linechecks.has_line_separator(raw):
                changes["escaped_line_separators"] += 1
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
    method = fixed.get("method")
    if "method" not in fixed:
        fixed["method"] = "POST"
        changes["method"] += 1
    elif isinstance(method, str) and method != "POST" and method.strip().upper() == "POST":
        fixed["method"] = "POST"
        changes["method_case"] += 1
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
