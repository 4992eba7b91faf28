"""The streaming validator: bytes in, Issues and a FileReport out.

One pass over the file, one line in memory at a time.  Every problem is reported with its
line, a code (the provider's own where it is known, CONTRACT.md section 3), the JSON path of
the offending value, and a message that says what to do.  The list of issues is capped; the
counts never are.

:class:`Validator` is the incremental core, shared with the builder: feed it lines (or
already-parsed records) and ask it for the :class:`FileReport` at the end.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import orjson

from batchkit import linechecks, schemas
from batchkit.endpoints import ENDPOINTS, Endpoint, get_endpoint, missing_v1, suggest_endpoint
from batchkit.errors import UsageError
from batchkit.limits import Limits
from batchkit.lines import LongLine, open_binary, read_lines

Severity = Literal["error", "warning"]

REQUIRED_KEYS = ("custom_id", "method", "url", "body")
_REQUIRED_SET = frozenset(REQUIRED_KEYS)
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
DEFAULT_MAX_ISSUES = 1000
#: Body keys that cap the tokens a request may generate: below 1, it can generate nothing.
TOKEN_LIMIT_KEYS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True)
class Issue:
    """One problem.  ``line`` is 1-based, or ``None`` for a file-level problem."""

    line: int | None
    code: str
    param: str | None
    message: str
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "param": self.param, "message": self.message}


@dataclass
class FileReport:
    """The verdict on one file: the fields of ``batchkit validate --format json``."""

    path: str
    endpoint: str | None
    model: str | None
    requests: int
    bytes: int
    embedding_inputs: int
    errors: list[Issue]
    warnings: list[Issue]
    errors_total: int
    warnings_total: int
    limits: Limits

    @property
    def valid(self) -> bool:
        return self.errors_total == 0

    def passed(self, strict: bool = False) -> bool:
        """Valid, and with ``strict`` also free of warnings."""
        return self.valid and not (strict and self.warnings_total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "valid": self.valid,
            "endpoint": self.endpoint,
            "model": self.model,
            "requests": self.requests,
            "bytes": self.bytes,
            "embedding_inputs": self.embedding_inputs,
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "errors_total": self.errors_total,
            "warnings_total": self.warnings_total,
        }


@dataclass
class _Collected:
    """Issues kept (up to ``cap`` of each severity) and counted (all of them).

    The cap is for the per-line issues, which can run into the thousands; the few file-level
    ones (limits, an empty file) are always kept, since they are often the verdict itself.
    """

    cap: int
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    errors_total: int = 0
    warnings_total: int = 0

    def add(self, issue: Issue) -> None:
        if issue.severity == "error":
            self.errors_total += 1
            kept = self.errors
        else:
            self.warnings_total += 1
            kept = self.warnings
        if issue.line is None or len(kept) < self.cap:
            kept.append(issue)


class Validator:
    """Checks one batch file, a line at a time.

    ``endpoint`` fixes the batch endpoint; when ``None`` it is taken from the first line whose
    url is a known endpoint, so that a typo on line 1 is one error, not one per line.  Use
    :meth:`feed` for raw lines (and :meth:`feed_too_long` for one too long to hold) or
    :meth:`check_record` for records that are already parsed (the builder), then
    :meth:`finish`.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        limits: Limits | None = None,
        *,
        path: str = "<stream>",
        max_issues: int = DEFAULT_MAX_ISSUES,
    ) -> None:
        if endpoint is not None and endpoint not in ENDPOINTS:
            known = ", ".join(ENDPOINTS)
            hint = suggest_endpoint(endpoint)
            extra = f" (did you mean {hint}?)" if hint else ""
            raise UsageError(f"unknown endpoint {endpoint!r}{extra}: choose one of {known}")
        self.limits = limits or Limits()
        self.path = path
        #: The batch endpoint, once known: from ``endpoint`` or the first known url.
        self._endpoint: Endpoint | None = get_endpoint(endpoint) if endpoint else None
        #: The line whose url set ``_endpoint`` (``None``: ``--endpoint`` did, or none yet).
        self._endpoint_line: int | None = None
        #: Until a known url is seen: the endpoint the first near miss (``/chat/completions``)
        #: stands for, so that the bodies before it are still checked against their schema.
        self._guess: Endpoint | None = None
        self._issues = _Collected(cap=max_issues)
        self._ids: dict[str, int] = {}
        self._model: str | None = None
        self._model_line = 0
        self._line = 0
        self._bytes = 0
        self._requests = 0
        self._embedding_inputs = 0
        # Set when line 1 shows the file is not JSONL at all (UTF-16, one pretty-printed JSON
        # document): one error says so, and the remaining lines are counted, not checked.
        self._not_jsonl = False
        #: Off only in the tests that compare the fast path with the full checks.
        self.fast_path = True

    # -- public -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        endpoint = self._endpoint or self._guess
        return endpoint.url if endpoint else None

    def feed(self, raw: bytes) -> list[Issue]:
        """Check one raw line (with or without its line end); returns its issues."""
        self._line += 1
        self._bytes += len(raw)
        line = self._line
        found: list[Issue] = []
        if line == 1:
            if raw.startswith(UTF8_BOM):
                found.append(
                    Issue(
                        1,
                        "byte_order_mark",
                        None,
                        "the file starts with a UTF-8 byte-order mark; save it as UTF-8 without "
                        "BOM (batchkit build --fix strips it)",
                    )
                )
                raw = raw[len(UTF8_BOM) :]
            elif raw.startswith(UTF16_BOMS):
                self._not_jsonl = True
                found.append(
                    Issue(
                        None,
                        "invalid_encoding",
                        None,
                        "the file is UTF-16; batch files must be UTF-8: convert it "
                        "(e.g. iconv -f UTF-16 -t UTF-8) and validate again",
                    )
                )
            elif raw.strip() in (b"[", b"{"):
                self._not_jsonl = True
                found.append(
                    Issue(
                        1,
                        "invalid_json_line",
                        None,
                        "the file is one pretty-printed JSON document, not JSON Lines: a batch "
                        "file needs one request object per line (batchkit build --fix converts "
                        "it)",
                    )
                )
        if self._not_jsonl:
            return self._record(found)
        if not raw or raw.isspace():
            found.append(
                Issue(line, "blank_line", None, "blank line; remove it", severity="warning")
            )
            return self._record(found)
        self._requests += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            found.append(parse_issue(raw, line, error))
            return self._record(found)
        if not isinstance(record, dict):
            found.append(_not_an_object(record, line))
            return self._record(found)
        found.extend(self._check(record, line))
        if not raw.isascii():  # the cheapest test first: most lines are ASCII
            found.extend(_separator_issues(raw, record, line))
        if linechecks.may_repeat_keys(raw, record):
            found.extend(
                Issue(line, "duplicate_key", finding.param, finding.text, severity="warning")
                for finding in linechecks.repeated_keys(raw)
            )
        return self._record(found)

    def feed_too_long(self, length: int) -> list[Issue]:
        """Count a line of ``length`` bytes that was too long to hold (read and let go).

        A line longer than the file's byte limit can never be part of a valid file, so it is
        one error on its own line, counted as a request and in the file's bytes.
        """
        self._line += 1
        self._bytes += length
        if self._not_jsonl:
            return []
        self._requests += 1
        limit = self.limits.max_bytes
        message = (
            f"line {self._line} alone is {length:,} bytes, over the file limit of {limit:,} "
            "bytes; it was not read whole or checked (a line with no line end? a file that "
            "is not JSON Lines?)"
        )
        return self._record([Issue(self._line, "file_too_large", None, message)])

    def check_record(
        self, record: dict[str, Any], nbytes: int, *, raw: bytes | None = None
    ) -> list[Issue]:
        """Check one parsed request that takes ``nbytes`` in the file (line end included).

        ``raw`` is the bytes the caller writes the record as, when it has them: a raw line
        separator is judged on those.  Without them the record is taken to be written as
        ``orjson.dumps`` writes it, which keeps U+2028 and U+2029 raw.
        """
        self._line += 1
        self._bytes += nbytes
        self._requests += 1
        found = self._check(record, self._line)
        written = raw if raw is not None else _dumps_or_empty(record)
        found.extend(_separator_issues(written, record, self._line))
        return self._record(found)

    def finish(self) -> FileReport:
        """The report, with the file-level checks (limits, empty file) added."""
        for issue in self._file_issues():
            self._issues.add(issue)
        collected = self._issues
        return FileReport(
            path=self.path,
            endpoint=self.endpoint,
            model=self._model,
            requests=self._requests,
            bytes=self._bytes,
            embedding_inputs=self._embedding_inputs,
            errors=collected.errors,
            warnings=collected.warnings,
            errors_total=collected.errors_total,
            warnings_total=collected.warnings_total,
            limits=self.limits,
        )

    # -- the rules --------------------------------------------------------------------------

    def _record(self, found: list[Issue]) -> list[Issue]:
        for issue in found:
            self._issues.add(issue)
        return found

    def _passes_fast_path(self, record: dict[str, Any], line: int) -> bool:
        """True when ``record`` is an ordinary valid request; it is then fully accounted for.

        Most lines of most files are valid, and this answers for them with a few comparisons
        and one schema call.  It only ever says "nothing to report": anything unusual
        (a warning, a first line, any doubt) returns False and the full checks below run,
        which produce the messages.  tests/test_validate_fuzz.py checks the two agree.
        """
        endpoint = self._endpoint  # False before the endpoint is known: the full checks set it
        if endpoint is None or record.keys() != _REQUIRED_SET:
            return False
        body, custom_id = record["body"], record["custom_id"]
        if (
            record["method"] != "POST"
            or record["url"] != endpoint.url
            or type(body) is not dict
            or type(custom_id) is not str
            or not 0 < len(custom_id) <= self.limits.long_custom_id
            or custom_id.isspace()
            or body.get("stream") is True
            # Also False before the first model is known: the full checks record it.
            or body.get("model") != self._model
            # Recorded here for good: if a later test fails, the full checks see this line
            # as the id's first use, which it is.
            or self._ids.setdefault(custom_id, line) != line
            or not schemas.is_valid(endpoint.schema, body)
            # Only bodies that allow keys of their own can hold a typo or a token cap.
            or (
                schemas.open_properties(endpoint.schema) is not None
                and (_low_token_limits(endpoint, body) or _misspelled_keys(endpoint, body))
            )
        ):
            return False
        self._embedding_inputs += endpoint.count_inputs(body)
        return True

    def _check(self, record: dict[str, Any], line: int) -> list[Issue]:
        if self.fast_path and self._passes_fast_path(record, line):
            return []
        found: list[Issue] = []
        for key in REQUIRED_KEYS:
            if key not in record:
                found.append(
                    Issue(
                        line,
                        "missing_required_parameter",
                        key,
                        f"missing required parameter '{key}'; every line needs custom_id, "
                        "method, url and body",
                    )
                )
        for key in record:
            if key not in REQUIRED_KEYS:
                found.append(
                    Issue(
                        line,
                        "unknown_parameter",
                        key,
                        f"unknown top-level key {schemas.show(key)} is ignored or refused by the "
                        "server; move it into body or remove it",
                        severity="warning",
                    )
                )
        if "custom_id" in record:
            found.extend(self._check_custom_id(record["custom_id"], line))
        if "method" in record:
            method = record["method"]
            if method != "POST":
                found.append(
                    Issue(
                        line,
                        "invalid_method",
                        "method",
                        f'method is {schemas.show(method)}; batch requests must use "POST"',
                    )
                )
        url = record.get("url")
        self._learn_endpoint(url, line)
        if "url" in record:
            found.extend(self._check_url(url, line))
        if "body" in record:
            body = record["body"]
            if isinstance(body, dict):
                found.extend(self._check_body(body, line, _named_endpoint(url)))
            else:
                found.append(
                    Issue(
                        line,
                        "invalid_type",
                        "body",
                        f"body must be an object (the request's JSON body), got "
                        f"{schemas.json_type(body)}",
                    )
                )
        return found

    def _check_custom_id(self, custom_id: Any, line: int) -> list[Issue]:
        if not isinstance(custom_id, str):
            return [
                Issue(
                    line,
                    "invalid_type",
                    "custom_id",
                    f"custom_id must be a string, got {schemas.describe(custom_id)}"
                    + ("" if custom_id is None else "; quote it"),
                )
            ]
        if not custom_id:
            return [
                Issue(line, "invalid_type", "custom_id", "custom_id must be a non-empty string")
            ]
        first = self._ids.setdefault(custom_id, line)
        if first != line:
            return [
                Issue(
                    line,
                    "duplicate_custom_id",
                    "custom_id",
                    f"{schemas.show(custom_id)} was already used on line {first}; "
                    "custom_id must be unique in the file",
                )
            ]
        found: list[Issue] = []
        if len(custom_id) > self.limits.long_custom_id:
            found.append(
                Issue(
                    line,
                    "long_custom_id",
                    "custom_id",
                    f"custom_id is {len(custom_id)} characters; some providers refuse more "
                    f"than {self.limits.long_custom_id}",
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

    def _learn_endpoint(self, url: Any, line: int) -> None:
        """The first known url sets the batch endpoint; until then a near miss stands in."""
        if self._endpoint is not None or not isinstance(url, str):
            return
        if url in ENDPOINTS:
            self._endpoint, self._endpoint_line = ENDPOINTS[url], line
        elif self._guess is None:
            self._guess = _named_endpoint(url)

    def _check_url(self, url: Any, line: int) -> list[Issue]:
        if not isinstance(url, str):
            return [
                Issue(
                    line,
                    "invalid_type",
                    "url",
                    f'url must be a string such as "/v1/chat/completions", got '
                    f"{schemas.json_type(url)}",
                )
            ]
        expected = self.endpoint
        if url == expected:
            return []
        hint = suggest_endpoint(url)
        if url in ENDPOINTS:
            source = (
                "--endpoint"
                if self._endpoint_line is None
                else f"line {self._endpoint_line}, the first line that names one"
            )
            message = (
                f'url is "{url}" but the batch endpoint is "{expected}" (from {source}); '
                "every line of a batch must use the batch's endpoint"
            )
        elif hint is None or (expected is not None and hint != expected):
            known = ", ".join(f'"{name}"' for name in ENDPOINTS)
            message = (
                f"url is {schemas.show(url)}, which is not a batch endpoint batchkit supports "
                f"(use one of {known})"
                if expected is None
                else f'url is {schemas.show(url)} but the batch endpoint is "{expected}"'
            )
        elif missing_v1(url, hint):
            message = (
                f'url is {schemas.show(url)} but the batch endpoint is "{hint}" (missing "/v1"?)'
            )
        else:
            message = (
                f'url is {schemas.show(url)}, which is not a batch endpoint: did you mean "{hint}"?'
            )
        return [Issue(line, "invalid_url", "url", message)]

    def _check_body(self, body: dict[str, Any], line: int, named: Endpoint | None) -> list[Issue]:
        """The body's rules; ``named`` is the endpoint the line's own url names or means."""
        found: list[Issue] = []
        if body.get("stream") is True:
            found.append(
                Issue(
                    line,
                    "streaming_unsupported",
                    "body.stream",
                    "streaming is not supported in the Batch API; remove body.stream or set it "
                    "to false",
                )
            )
        model = body.get("model")
        if isinstance(model, str):
            if self._model is None:
                self._model, self._model_line = model, line
            elif model != self._model:
                found.append(
                    Issue(
                        line,
                        "model_mismatch",
                        "body.model",
                        f"body.model is {schemas.show(model)} but line {self._model_line} uses "
                        f"{schemas.show(self._model)}; a batch file must use one model (split "
                        "the file per model)",
                    )
                )
        endpoint = self._endpoint or self._guess or named
        if endpoint is None:
            return found
        judge = endpoint
        problems = schemas.body_problems(endpoint.schema, body)
        if problems and named not in (None, endpoint) and schemas.is_valid(named.schema, body):
            # A body right for the url its line names: the url, already reported, is the one
            # mistake of this line, not the body as well.
            judge, problems = named, []
        found.extend(
            Issue(line, "invalid_request", problem.param, problem.message) for problem in problems
        )
        flagged = {problem.param for problem in problems}
        found.extend(w for w in _body_warnings(judge, body, line) if w.param not in flagged)
        self._embedding_inputs += endpoint.count_inputs(body)
        return found

    def _file_issues(self) -> list[Issue]:
        limits = self.limits
        found: list[Issue] = []
        if self._requests == 0 and not self._not_jsonl:
            message = "the file has no requests; a batch needs one or more"
            found.append(Issue(None, "empty_file", None, message))
        checks = [
            (self._requests, limits.max_requests, "too_many_tasks", "requests", "split the file"),
            (self._bytes, limits.max_bytes, "file_too_large", "bytes", "split the file"),
        ]
        endpoint = self._endpoint or self._guess
        if endpoint is not None and endpoint.counts_inputs:
            checks.append(
                (
                    self._embedding_inputs,
                    limits.max_embedding_inputs,
                    "too_many_embedding_inputs",
                    "embedding inputs",
                    "split the file",
                )
            )
        for value, limit, code, what, advice in checks:
            if value > limit:
                found.append(
                    Issue(
                        None,
                        code,
                        None,
                        f"the file has {value:,} {what}, over the limit of {limit:,}; {advice} "
                        "(batchkit build splits at the limits)",
                    )
                )
            elif value >= limit * limits.near_limit_ratio:
                found.append(
                    Issue(
                        None,
                        "near_limit",
                        None,
                        f"the file has {value:,} {what}, {value / limit:.0%} of the limit of "
                        f"{limit:,}",
                        severity="warning",
                    )
                )
        return found


def _named_endpoint(url: Any) -> Endpoint | None:
    """The endpoint a line's url names, or plainly means (a missing ``/v1``, a typo)."""
    if not isinstance(url, str):
        return None
    return ENDPOINTS.get(url) or get_endpoint(suggest_endpoint(url) or "")


def _low_token_limits(endpoint: Endpoint, body: dict[str, Any]) -> list[tuple[str, int]]:
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


def _misspelled_keys(endpoint: Endpoint, body: dict[str, Any]) -> list[tuple[str, str]]:
    """Unknown body keys close to a known one (``max_token``), with the known one.

    Unknown keys are allowed (providers add their own), so only a near miss is worth a word.
    """
    known = schemas.open_properties(endpoint.schema)
    if known is None or known.issuperset(body):
        return []
    return [
        (key, hint) for key in body if key not in known and (hint := schemas.close_key(key, known))
    ]


def _body_warnings(endpoint: Endpoint, body: dict[str, Any], line: int) -> list[Issue]:
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
        for key, hint in _misspelled_keys(endpoint, body)
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
        for key, value in _low_token_limits(endpoint, body)
    )
    return found


def _separator_issues(raw: bytes, record: dict[str, Any], line: int) -> list[Issue]:
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


def _dumps_or_empty(record: dict[str, Any]) -> bytes:
    """``record`` as orjson writes it, or nothing when it cannot be (the checks say why)."""
    try:
        return orjson.dumps(record)
    except (orjson.JSONEncodeError, TypeError):
        return b""


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
    import re

    return re.search(rb"[:\[,]\s*-?(NaN|Infinity)\b", raw) is not None


def _not_an_object(record: Any, line: int) -> Issue:
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


Source = str | os.PathLike[str] | BinaryIO


def validate_file(
    source: Source,
    endpoint: str | None = None,
    limits: Limits | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> FileReport:
    """Validate a batch file (a path, ``"-"`` for stdin, or a binary stream) in one pass.

    Returns the :class:`FileReport`; never raises for a bad file, only for bad arguments
    (:class:`~batchkit.errors.UsageError`) or a file that cannot be read.
    """
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            return validate_stream(_stdin_bytes(), "<stdin>", endpoint, limits, max_issues)
        with open_binary(source) as stream:
            return validate_stream(stream, str(source), endpoint, limits, max_issues)
    name = getattr(source, "name", "<stream>")
    return validate_stream(source, str(name), endpoint, limits, max_issues)


def validate_stream(
    lines: BinaryIO | Iterable[bytes],
    path: str,
    endpoint: str | None = None,
    limits: Limits | None = None,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> FileReport:
    """Validate a binary stream, or an iterable of raw lines, one line at a time.

    A stream is read with a bound (the file's byte limit): a longer line, which can never be
    valid, is counted and reported without being held, so memory does not grow with it.
    """
    validator = Validator(endpoint, limits, path=path, max_issues=max_issues)
    for raw in _lines_of(lines, validator.limits.max_bytes):
        if isinstance(raw, LongLine):
            validator.feed_too_long(raw.length)
        else:
            validator.feed(raw)
    return validator.finish()


_NOT_BINARY = (
    "validate_file reads bytes: pass a path, a binary file (open(path, 'rb')) or the bytes "
    "in io.BytesIO(data), not {what}"
)


def _lines_of(source: BinaryIO | Iterable[bytes], max_line: int) -> Iterator[bytes | LongLine]:
    """The lines of ``source``, bounded when it is a stream; a text source is a UsageError."""
    if isinstance(source, (str, bytes, bytearray, memoryview, io.TextIOBase)):
        what = "a text stream" if isinstance(source, io.TextIOBase) else type(source).__name__
        raise UsageError(_NOT_BINARY.format(what=what))
    if hasattr(source, "readline"):
        return read_lines(source, max_line)  # type: ignore[arg-type]
    return _bytes_only(source)


def _bytes_only(lines: Iterable[bytes]) -> Iterator[bytes]:
    for raw in lines:
        if not isinstance(raw, bytes):
            raise UsageError(_NOT_BINARY.format(what=f"lines of type {type(raw).__name__}"))
        yield raw


def _stdin_bytes() -> BinaryIO:
    """Standard input as bytes; replaced by a text-only stream (a notebook), a UsageError."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise UsageError(_NOT_BINARY.format(what="a text-only standard input"))
    return stream  # type: ignore[no-any-return]
