"""The streaming validator: bytes in, Issues and a FileReport out.

One pass over the file, one line in memory at a time.  Every problem is reported with its
line, a code (the provider's own where it is known, CONTRACT.md section 3), the JSON path of
the offending value, and a message that says what to do.  The list of issues is capped; the
counts never are.

:class:`Validator` is the incremental core, shared with the builder: feed it lines (or
already-parsed records) and ask it for the :class:`FileReport` at the end.  It keeps what
needs the file's state (the endpoint, the model, the ids seen, the totals); what needs none
lives beside it and is re-exported here: the report types (:mod:`batchkit.issues`), a line
that is not a request (:mod:`batchkit.parse_issues`), the warnings on a valid request
(:mod:`batchkit.request_warnings`), the totals against the limits
(:mod:`batchkit.file_limits`) and what may be read (:mod:`batchkit.sources`).  The rules that
judge one request, which do need that state, are in :mod:`batchkit.request_rules`: the
validator feeds them; they decide.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from batchkit.blocks import CleanBlock, clean_block, clean_bodies, clean_records
from batchkit.endpoints import ENDPOINTS, require_endpoint
from batchkit.errors import UsageError
from batchkit.file_limits import total_issues
from batchkit.issues import DEFAULT_MAX_ISSUES, Collected, FileReport, Issue, Severity
from batchkit.limits import Limits
from batchkit.line_patterns import LinePatterns
from batchkit.linechecks import has_line_separator
from batchkit.lines import BlockItem, LongLine, open_binary, read_blocks
from batchkit.parse_issues import (
    BOM_ISSUE,
    UTF8_BOM,
    UTF16_BOMS,
    not_an_object,
    not_jsonl_issue,
    parse_issue,
)
from batchkit.request_rules import REQUIRED_KEYS, RequestRules
from batchkit.request_warnings import (
    TOKEN_LIMIT_KEYS,
    dumps_or_empty,
    duplicate_key_issues,
    separator_issues,
)
from batchkit.sources import Source, lines_of, stdin_bytes

__all__ = [
    "DEFAULT_MAX_ISSUES",
    "REQUIRED_KEYS",
    "TOKEN_LIMIT_KEYS",
    "UTF8_BOM",
    "UTF16_BOMS",
    "FileReport",
    "Issue",
    "Severity",
    "Source",
    "Validator",
    "parse_issue",
    "validate_file",
    "validate_stream",
]

#: A block that is not clean is split in two until its parts are this small; then each line
#: of the part is checked on its own.
_SMALLEST_BLOCK = 8


class Validator(RequestRules):
    """Checks one batch file, a line at a time.

    ``endpoint`` fixes the batch endpoint; when ``None`` it is taken from the first line whose
    url is a known endpoint, so that a typo on line 1 is one error, not one per line.  Use
    :meth:`feed` for raw lines (and :meth:`feed_too_long` for one too long to hold) or
    :meth:`check_record` for records that are already parsed (the builder), then
    :meth:`finish`.  What a request is checked against is in :class:`RequestRules`
    (:mod:`batchkit.request_rules`); this class feeds it and keeps the file's totals.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        limits: Limits | None = None,
        *,
        path: str = "<stream>",
        max_issues: int = DEFAULT_MAX_ISSUES,
    ) -> None:
        # (what the rules read and update is described in RequestRules)
        self._endpoint = require_endpoint(endpoint) if endpoint is not None else None
        self.limits = limits or Limits()
        self.path = path
        self._endpoint_line = None
        self._guess = None
        self._issues = Collected(cap=max_issues)
        self._ids = {}
        self._model = None
        self._model_line = 0
        self._line = 0
        self._bytes = 0
        self._requests = 0
        self._embedding_inputs = 0
        # Set when line 1 shows the file is not JSONL at all (UTF-16, one pretty-printed JSON
        # document): one error says so, and the remaining lines are counted, not checked.
        self._not_jsonl = False
        self.fast_path = True
        self._patterns = LinePatterns()

    # -- public -----------------------------------------------------------------------------

    def feed(self, raw: bytes) -> list[Issue]:
        """Check one raw line (with or without its line end); returns its issues."""
        self._line += 1
        self._bytes += len(raw)
        line = self._line
        found: list[Issue] = []
        if line == 1:
            if raw.startswith(UTF8_BOM):
                found.append(BOM_ISSUE)
                raw = raw[len(UTF8_BOM) :]
            elif (not_jsonl := not_jsonl_issue(raw)) is not None:
                self._not_jsonl = True
                found.append(not_jsonl)
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
        found.extend(self._judge(raw, record, line))
        return self._record(found)

    def feed_block(self, lines: list[bytes]) -> None:
        """Check complete lines whose line feed was stripped (a block of :func:`read_blocks`).

        What they report is exactly what :meth:`feed` reports for each line with its line
        feed back; most blocks of most files are answered by
        :func:`~batchkit.blocks.clean_block` in a few calls, and any other block line by line.
        """
        if self._line == 0 and lines:
            self.feed(lines[0] + b"\n")  # line 1: a byte-order mark, a file not JSON Lines
            lines = lines[1:]
        endpoint, model = self._endpoint, self._model
        if endpoint is None or model is None or self._not_jsonl or not self.fast_path:
            self._feed_each(lines)
            return
        limit = self.limits.long_custom_id
        clean = self._patterns.clean_lines(endpoint.url, model, limit, self._ids.keys(), lines)
        if clean is not None:
            ids, inputs = clean
            self._account(ids, sum(map(len, lines)) + len(lines), inputs)
            return
        try:
            records = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:  # which line, and why, is feed's to say
            self._feed_each(lines)
            return
        if records:
            self._feed_parsed(lines, records)

    def _feed_each(self, lines: list[bytes]) -> None:
        for raw in lines:
            self.feed(raw + b"\n")

    def feed_items(self, items: Iterable[BlockItem]) -> None:
        """Check what :func:`~batchkit.lines.read_blocks` (or ``read_lines``) yields."""
        for item in items:
            if type(item) is list:
                self.feed_block(item)
            elif isinstance(item, LongLine):
                self.feed_too_long(item.length)
            else:
                self.feed(item)  # type: ignore[arg-type]

    def _feed_parsed(self, lines: list[bytes], records: list[Any]) -> None:
        """Parsed lines: all at once when the block is clean, else each half in turn."""
        endpoint, model = self._endpoint, self._model
        assert endpoint is not None and model is not None  # feed_block checked
        limit = self.limits.long_custom_id
        clean = clean_block(endpoint, model, limit, self._ids.keys(), lines, records)
        if clean is not None:
            self._take_clean(lines, records, clean)
        elif len(lines) > _SMALLEST_BLOCK:  # halves in order: the first's ids count for the second
            half = len(lines) // 2
            self._feed_parsed(lines[:half], records[:half])
            self._feed_parsed(lines[half:], records[half:])
        else:
            for raw, record in zip(lines, records, strict=True):
                raw += b"\n"
                self._line += 1
                self._bytes += len(raw)
                self._requests += 1
                self._record(self._judge(raw, record, self._line))

    def _take_clean(self, lines: list[bytes], records: list[Any], clean: CleanBlock) -> None:
        """Account for a clean block as :meth:`feed` would for each of its lines."""
        first = self._line + 1
        self._account(clean.ids, sum(map(len, lines)) + len(lines), clean.embedding_inputs)
        if not clean.compact:  # keys written twice: the only thing left to report
            for line, (raw, record) in enumerate(zip(lines, records, strict=True), start=first):
                self._record(duplicate_key_issues(raw + b"\n", record, line))

    def _account(self, ids: list[str], nbytes: int, inputs: int) -> None:
        """Count requests with nothing to report, as their lines' checks one by one would."""
        first = self._line + 1
        self._ids.update(zip(ids, range(first, first + len(ids)), strict=True))
        self._line += len(ids)
        self._requests += len(ids)
        self._bytes += nbytes
        self._embedding_inputs += inputs

    def check_records(self, records: list[dict[str, Any]], lines: list[bytes]) -> bool:
        """Account for parsed requests written as ``lines`` when none has anything to report.

        The builder's way to check many records at once: ``True`` means each was counted as
        :meth:`check_record` would count it, with nothing to report; ``False`` means nothing
        was counted, and :meth:`check_record` must look at each.
        """
        endpoint, model = self._endpoint, self._model
        if endpoint is None or model is None or not self.fast_path:
            return False
        limit = self.limits.long_custom_id
        found = clean_records(endpoint, model, limit, self._ids.keys(), records)
        if found is None or has_line_separator(b"".join(lines)):
            return False
        ids, inputs = found
        self._account(ids, sum(map(len, lines)), inputs)
        return True

    def check_bodies(
        self,
        ids: list[str],
        bodies: list[dict[str, Any]],
        nbytes: int,
        *,
        ids_are_new: bool = False,
    ) -> bool:
        """:meth:`check_records` for the requests that POST each of ``bodies`` to this file's
        url with the custom_id beside it in ``ids``, written in ``nbytes`` bytes with no raw
        line separator (the caller made the lines and searched them).  The builder's way when
        it makes the ids itself: no record is built.  ``ids_are_new``: the caller knows no id
        is blank, repeats, or was used in this file before (see :func:`clean_bodies`)."""
        endpoint, model = self._endpoint, self._model
        if endpoint is None or model is None or not self.fast_path:
            return False
        limit = self.limits.long_custom_id
        inputs = clean_bodies(
            endpoint, model, limit, self._ids.keys(), ids, bodies, ids_are_new=ids_are_new
        )
        if inputs is None:
            return False
        self._account(ids, nbytes, inputs)
        return True

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
        written = raw if raw is not None else dumps_or_empty(record)
        found.extend(separator_issues(written, record, self._line))
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

    # -- one part of a file, checked on its own (batchkit/validate_parts.py) ----------------

    def context(self) -> Context:
        """What the next line's checks take from the lines before it, but for the ids used."""
        return Context(
            endpoint=self._endpoint.url if self._endpoint else None,
            endpoint_line=self._endpoint_line,
            guess=self._guess.url if self._guess else None,
            model=self._model,
            model_line=self._model_line,
            not_jsonl=self._not_jsonl,
        )

    def resume(self, context: Context, line: int) -> None:
        """Go on as if ``line`` lines had left ``context`` (and, here, used no custom_id)."""
        self._endpoint = ENDPOINTS[context.endpoint] if context.endpoint else None
        self._endpoint_line = context.endpoint_line
        self._guess = ENDPOINTS[context.guess] if context.guess else None
        self._model, self._model_line = context.model, context.model_line
        self._not_jsonl = context.not_jsonl
        self._line = line

    def part(self, start: Context, line: int) -> Part:
        """What this validator found since :meth:`resume` (``start``, ``line``) set it going."""
        return Part(
            start=start,
            first_line=line,
            end=self.context(),
            lines=self._line - line,
            ids=list(self._ids),
            issues=self._issues,
            bytes=self._bytes,
            requests=self._requests,
            embedding_inputs=self._embedding_inputs,
        )

    def finish_with(self, parts: Sequence[Part]) -> FileReport | None:
        """The report on this validator's lines followed by those of ``parts`` (in file order,
        each checked on its own), when it is the report of feeding their lines here: each part
        starts at the line and in the context the lines before it left, and no custom_id is
        used in two of them, or here.  Otherwise ``None``, and nothing is taken."""
        line, context = self._line, self.context()
        earlier: list[Set[str]] = [self._ids.keys()]
        for index, part in enumerate(parts, start=1):
            if part.first_line != line or part.start != context:
                return None
            if not all(ids.isdisjoint(part.ids) for ids in earlier):
                return None
            if index < len(parts):
                earlier.append(set(part.ids))
            line, context = part.first_line + part.lines, part.end
        for part in parts:
            self._issues.add_all(part.issues)
            self._bytes += part.bytes
            self._requests += part.requests
            self._embedding_inputs += part.embedding_inputs
        self.resume(context, line)
        return self.finish()

    # -- the rules --------------------------------------------------------------------------

    def _judge(self, raw: bytes, record: Any, line: int) -> list[Issue]:
        """Everything to report about the parsed line ``raw``."""
        if not isinstance(record, dict):
            return [not_an_object(record, line)]
        found = self._check(record, line)
        if not raw.isascii():  # the cheapest test first: most lines are ASCII
            found.extend(separator_issues(raw, record, line))
        found.extend(duplicate_key_issues(raw, record, line))
        return found

    def _record(self, found: list[Issue]) -> list[Issue]:
        for issue in found:
            self._issues.add(issue)
        return found

    def _file_issues(self) -> list[Issue]:
        found: list[Issue] = []
        if self._requests == 0 and not self._not_jsonl:
            message = "the file has no requests; a batch needs one or more"
            found.append(Issue(None, "empty_file", None, message))
        endpoint = self._endpoint or self._guess
        counts_inputs = endpoint is not None and endpoint.counts_inputs
        inputs = self._embedding_inputs if counts_inputs else None
        found.extend(total_issues(self.limits, self._requests, self._bytes, inputs))
        return found


@dataclass(frozen=True)
class Context:
    """What a line's checks take from the lines before it, besides the custom_ids they used:
    the batch's endpoint and model, the lines that set them, and whether line 1 was JSONL."""

    endpoint: str | None
    endpoint_line: int | None
    guess: str | None
    model: str | None
    model_line: int
    not_jsonl: bool


@dataclass
class Part:
    """What a validator found in some lines of a file, checked on their own: the context and
    line it started from and ended with, the custom_ids used, and the issues and totals of
    those lines."""

    start: Context
    first_line: int
    end: Context
    lines: int
    ids: list[str]
    issues: Collected
    bytes: int
    requests: int
    embedding_inputs: int


def validate_file(
    source: Source,
    endpoint: str | None = None,
    limits: Limits | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
    jobs: int | None = None,
) -> FileReport:
    """Validate a batch file (a path, ``"-"`` for stdin, or a binary stream) in one pass.

    A large file named by its path is checked in parts by up to ``jobs`` processes at once,
    with the same report (:mod:`batchkit.validate_parts`); ``None`` lets batchkit choose from
    the file's size and the cores, and 1 keeps to this process.  Returns the
    :class:`FileReport`; never raises for a bad file, only for bad arguments
    (:class:`~batchkit.errors.UsageError`) or a file that cannot be read.
    """
    if jobs is not None and jobs < 1:
        raise UsageError(f"jobs must be 1 or more, not {jobs}")
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            return validate_stream(stdin_bytes(), "<stdin>", endpoint, limits, max_issues)
        with open_binary(source) as stream:
            if jobs != 1:
                from batchkit.validate_parts import (
                    validate_parts,
                )  # here: validate_parts imports this module

                report = validate_parts(stream, str(source), endpoint, limits, max_issues, jobs)
                if report is not None:
                    return report
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
    max_line = validator.limits.max_bytes
    items: Iterable[BlockItem] = lines_of(lines, max_line)  # refuses text
    if hasattr(lines, "readline"):
        items = read_blocks(lines, max_line)  # type: ignore[arg-type]
    validator.feed_items(items)
    return validator.finish()
