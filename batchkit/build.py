"""build_batch: requests in, valid (and if needed split) batch files out.

Every request is checked by the same :class:`~batchkit.validate.Validator` as ``batchkit
validate`` (on the parsed record: nothing is encoded or parsed twice).  What only makes sense
for a whole build lives here: the shape of an item, one model for the build, custom_ids unique
across all the files, and a request too large for any file.  Everything else is the
validator's verdict.

Files are written to hidden temporary files in the output's directory and renamed only when
the whole build succeeded, so a failure (an exception, Ctrl-C, a full disk) never leaves a
partial file under an output name.  The renames make the output atomic, not durable: there is
no fsync.  A process killed outright (SIGKILL, a power cut) cannot clean up: the next build of
the same output removes what it left (see :mod:`batchkit.outputs`).

Two things make a built file safer than the letter of the limits asks:

- Each file is filled only to just under the ``near_limit`` share of every limit (see
  :func:`~batchkit.file_limits.fill`), so that every file batchkit writes passes ``batchkit
  validate --strict``.
- U+2028, U+2029 and U+0085 are written escaped (see
  :func:`~batchkit.linechecks.escape_line_separators`): JSON allows them raw, but a server
  that splits lines with a Unicode-aware splitter would cut the request there.

This module holds the build itself (:func:`build_batch`, the builder, the split into files);
what a build reports is in :mod:`batchkit.build_result`, the files and their temporaries in
:mod:`batchkit.outputs`, the id set in :mod:`batchkit.seen_ids`.  Every public name is
importable from here as before.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from batchkit import schemas
from batchkit.build_chunks import DEFAULT_ID, Chunk, plain_chunk
from batchkit.build_parts import Part, Pending, TokenSplit
from batchkit.build_result import (
    BuildResult,
    InvalidItem,
    InvalidRequestError,
    OutputFile,
    RequestIssue,
    describe_request,
)
from batchkit.endpoints import Endpoint, require_endpoint
from batchkit.errors import InvalidInputError, UsageError
from batchkit.file_limits import fill
from batchkit.issues import DEFAULT_MAX_ISSUES, Issue
from batchkit.limits import Limits, get_profile
from batchkit.linechecks import escape_line_separators
from batchkit.outputs import STALE_TEMP_SECONDS, OutputSet, TempWriter
from batchkit.seen_ids import SeenIds as _SeenIds
from batchkit.token_files import TOKEN_LIMIT_EXCEEDED
from batchkit.validate import REQUIRED_KEYS

__all__ = [
    "LINE_KEYS",
    "PROGRESS_EVERY",
    "STALE_TEMP_SECONDS",
    "BuildResult",
    "CustomIdFunction",
    "InvalidItem",
    "InvalidRequestError",
    "OnInvalid",
    "OutputFile",
    "ProgressFunction",
    "RequestIssue",
    "build_batch",
    "default_custom_id",
    "describe_request",
    "escape_line_separators",
    "fill",
]

OnInvalid = Literal["raise", "skip"]
#: ``custom_id(index, body) -> str``: the id of an item that has none (``index`` is 0-based).
CustomIdFunction = Callable[[int, Any], str]
#: ``progress(handled)``: the number of input items handled so far.
ProgressFunction = Callable[[int], None]

#: The keys of a batch line, in the order they are written.
LINE_KEYS = REQUIRED_KEYS
_LINE_KEY_SET = frozenset(LINE_KEYS)
#: How often (in items) the progress callback is called; it is also called once at the end.
PROGRESS_EVERY = 1000
_WRITE_BUFFER = 1 << 20
#: The most requests that wait to be checked together (see :class:`~batchkit.build_parts.Pending`).
PENDING = 128
#: How many input items the build takes at a time (see :mod:`batchkit.build_chunks`).
CHUNK = 128


def default_custom_id(index: int, body: Any) -> str:
    """``request-000001`` for the first item of the input, ``request-000002`` for the next...

    Stable: the same input gives the same ids.  The number is the item's position (1-based)
    in the whole input, rejected items included, so an id says where its request came from.
    """
    return DEFAULT_ID % (index + 1)


def build_batch(
    requests: Iterable[Any],
    *,
    endpoint: str,
    output: str | os.PathLike[str],
    model: str | None = None,
    limits: Limits | None = None,
    custom_id: CustomIdFunction | None = None,
    on_invalid: OnInvalid = "raise",
    overwrite: bool = False,
    progress: ProgressFunction | None = None,
    profile: str | None = None,
    max_tokens_per_file: int | None = None,
    encoding: str | None = None,
) -> BuildResult:
    """Write ``requests`` as batch files for ``endpoint``, split at the limits, atomically.

    Each item is a request body (``{"messages": ...}``), a full line (a dict with any of
    ``custom_id``, ``method``, ``url``, ``body``: the missing ones are filled in) or a
    ``(custom_id, body)`` pair.  Items are read one at a time, so a generator of millions
    builds in constant memory (only the set of custom_ids grows, by 8 bytes an id).

    - ``output`` must end in ``.jsonl``.  One file is written as ``output`` itself; more as
      ``name-001.jsonl``, ``name-002.jsonl``...  Existing outputs (any of those names, and
      ``name.rejects.jsonl``) are an error unless ``overwrite``; then the stale ones an earlier,
      larger build left are removed too.
    - ``model`` fills a missing ``body.model``; a different one is an error.  Without it, the
      first request's model is the build's model.
    - ``custom_id(index, body)`` names items that have no id; the default is
      :func:`default_custom_id` (``request-000001``...).
    - ``limits`` (else ``profile``'s limits, else the default profile's) decide the splits.
      Each file is filled only to just under 90% (``near_limit_ratio``) of every limit:
      44,999 requests, 180 MiB, 44,999 embedding inputs with the default limits.  So every
      file passes ``batchkit validate --strict`` (whose ``near_limit`` warning starts at 90%)
      and keeps 10% headroom.  A single request over that share but within the limit is
      still written, in a file of its own, which then gets the ``near_limit`` warning.
    - U+2028, U+2029 and U+0085 are written escaped (``\\u2028``...), so a server that splits
      lines on Unicode line ends sees one request per line.
    - ``on_invalid="raise"`` raises :class:`InvalidRequestError` at the first bad request and
      writes nothing; ``"skip"`` writes bad requests with their errors to
      ``name.rejects.jsonl`` and goes on.
    - ``progress(handled)`` is called every 1,000 items and at the end.
    - ``max_tokens_per_file`` splits by prompt tokens too (counted with the model's encoding,
      or ``encoding``), filled like the other limits to under 90%: every file stays under an
      account's enqueued-token limit.  A request over the limit itself is rejected
      (``token_limit_exceeded``).
    - An :class:`InvalidItem` (from a reader that knows an item is bad) is rejected as an
      invalid request is.
    """
    target = require_endpoint(endpoint)
    if on_invalid not in ("raise", "skip"):
        raise UsageError(f'on_invalid must be "raise" or "skip", got {on_invalid!r}')
    files = OutputSet(Path(output), overwrite=overwrite, create=_open_temp)
    builder = _Builder(
        files,
        target,
        limits or get_profile(profile).limits,
        model=model,
        custom_id=custom_id or default_custom_id,
        on_invalid=on_invalid,
        tokens=None if max_tokens_per_file is None else TokenSplit(max_tokens_per_file, encoding),
    )
    # Reading ahead would show where a reader stands when a request fails (the CLI names the
    # CSV row it is on): so only in a list, or when nothing is raised.
    ahead = isinstance(requests, (list, tuple)) or on_invalid == "skip"
    builder.pending.most = PENDING if ahead else 1
    try:
        handled = (_add_chunks if ahead else _add_each)(builder, requests, progress)
        result = builder.finish()
    except BaseException:
        files.discard()
        raise
    if progress is not None:
        progress(handled)
    return result


def _add_each(builder: _Builder, requests: Iterable[Any], progress: ProgressFunction | None) -> int:
    """Add the items one at a time, each judged before the next is read; how many."""
    handled = 0
    for handled, item in enumerate(requests, start=1):
        builder.add(handled - 1, item)
        if progress is not None and handled % PROGRESS_EVERY == 0:
            progress(handled)
    return handled


def _add_chunks(
    builder: _Builder, requests: Iterable[Any], progress: ProgressFunction | None
) -> int:
    """Add the items :data:`CHUNK` at a time (progress as :func:`_add_each` reports it)."""
    handled = 0
    items = iter(requests)
    while chunk := list(islice(items, CHUNK)):
        builder.add_chunk(handled, chunk)
        before, handled = handled, handled + len(chunk)
        if progress is not None:
            first = (before // PROGRESS_EVERY + 1) * PROGRESS_EVERY
            for done in range(first, handled + 1, PROGRESS_EVERY):
                progress(done)
    return handled


def _open_temp(path: Path) -> BinaryIO:
    """Create ``path`` for writing (never an existing file), with the build's buffer.

    The output set calls it (see :class:`~batchkit.outputs.OutputSet`); it is here so that
    tests can replace it, or the buffer, on this module (a full disk).
    """
    return open(path, "xb", buffering=_WRITE_BUFFER)


class _Builder:
    """The state of one build: the current file, the ids seen, the rejects."""

    def __init__(
        self,
        files: OutputSet,
        endpoint: Endpoint,
        limits: Limits,
        *,
        model: str | None,
        custom_id: CustomIdFunction,
        on_invalid: OnInvalid,
        tokens: TokenSplit | None = None,
    ) -> None:
        self.files = files
        self.endpoint = endpoint
        self.limits = limits
        self.model = model
        self.fill_model = model is not None
        self.custom_id = custom_id
        self.on_invalid = on_invalid
        self.seen = _SeenIds()
        self.tokens = tokens
        self.part = self._new_part()
        #: The finished files, under their temporary names (their validators are let go).
        self.done: list[OutputFile] = []
        self.rejects = TempWriter(files)
        self.rejected = 0
        self.first_reject = ""
        self.warnings: list[RequestIssue] = []
        self.warnings_total = 0
        self.pending = Pending()
        #: The positions whose ids :func:`default_custom_id` made and that are not in
        #: ``seen`` (:meth:`add_chunk`): while no other id appears, none can repeat.
        self.generated: list[tuple[int, int]] = []
        self.other_ids = custom_id is not default_custom_id

    def add_chunk(self, start: int, items: list[Any]) -> None:
        """Add ``items`` (the input's from position ``start``): at once when they are plain
        bodies that pass every check, else each with :meth:`add`."""
        chunk = None
        if len(items) > 1 and not self.other_ids and self.tokens is None:
            chunk = plain_chunk(
                items,
                start,
                url=self.endpoint.url,
                model=self.model,
                fill_model=self.fill_model,
                line_keys=_LINE_KEY_SET,
                count_inputs=self.endpoint.count_inputs if self.endpoint.counts_inputs else None,
                max_bytes=self.limits.max_bytes,
                max_inputs=self.limits.max_embedding_inputs,
            )
        if chunk is None or not self._take_chunk(start, chunk):
            for index, item in enumerate(items, start=start):
                self.add(index, item)

    def _take_chunk(self, start: int, chunk: Chunk) -> bool:
        """Write ``chunk`` to the current file if it all fits and the validator passes it."""
        self._flush()
        part, count = self.part, len(chunk.ids)
        if not part.fits_all(count, len(chunk.data), chunk.embedding_inputs):
            return False
        # Its ids are new: made from positions, and no other id has appeared (add_chunk).
        validator = part.validator
        if not validator.check_bodies(chunk.ids, chunk.bodies, len(chunk.data), ids_are_new=True):
            return False
        part.writer.write(chunk.data)
        part.requests += count
        part.bytes += len(chunk.data)
        part.embedding_inputs += chunk.embedding_inputs
        if self.generated and self.generated[-1][1] == start:  # one range for a run of chunks
            start = self.generated.pop()[0]
        self.generated.append((start, start + count))
        return True

    def _explicit_id(self) -> None:
        """An id not made by :func:`default_custom_id` is coming: from now on every id goes
        into ``seen``, starting with those :meth:`add_chunk` left out."""
        if self.other_ids:
            return
        self.other_ids = True
        for begin, end in self.generated:
            for index in range(begin, end):
                self.seen.add(default_custom_id(index, None))
        self.generated.clear()

    def add(self, index: int, item: Any) -> None:
        if isinstance(item, InvalidItem):
            self._reject(index, None, item.request, list(item.issues))
            return
        record = self._record(index, item)
        if isinstance(record, list):  # not a request at all: only its issues
            self._reject(index, None, item, record)
            return
        problems = self._check_build_rules(record)
        line = b""
        inputs = tokens = 0
        if not problems:
            try:
                line = escape_line_separators(
                    orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
                )
            except orjson.JSONEncodeError as error:
                message = f"the request cannot be written as JSON ({error})"
                problems = [Issue(None, "invalid_request", "body", message)]
        if not problems:
            body = record.get("body")
            inputs = self.endpoint.count_inputs(body) if isinstance(body, dict) else 0
            if self.tokens is not None and isinstance(body, dict):
                tokens = self.tokens.count(self.endpoint.url, body)
            problems = self._check_size(len(line), inputs, tokens)
        if problems:
            self._reject(index, record.get("custom_id"), record, problems)
            return
        if self.pending.most == 1:  # judged now: nothing waits
            self._check_and_write(index, record, line, inputs, tokens)
            return
        if not self.part.fits(len(line), inputs, tokens):
            self._flush()  # a rejected request frees its place: ask again
            if not self.part.fits(len(line), inputs, tokens):
                self._next_part()  # so that the file a request goes into is the one checking it
        pending = self.pending
        if not pending.indexes:
            pending.totals = self.part.totals()
        pending.indexes.append(index)
        pending.records.append(record)
        pending.lines.append(line)
        pending.sizes.append((inputs, tokens))
        self.part.count(len(line), inputs, tokens)
        if len(pending.indexes) >= pending.most:
            self._flush()

    def _flush(self) -> None:
        """Check the waiting requests at once; write them, or else take them one by one."""
        pending, part = self.pending, self.part
        if not pending.indexes:
            return
        if part.validator.check_records(pending.records, pending.lines):
            part.writer.write(b"".join(pending.lines))
            pending.clear()
            return
        part.restore(pending.totals)
        waiting = list(
            zip(pending.indexes, pending.records, pending.lines, pending.sizes, strict=True)
        )
        pending.clear()
        for index, record, line, (inputs, tokens) in waiting:
            self._check_and_write(index, record, line, inputs, tokens)

    def _check_and_write(
        self, index: int, record: dict[str, Any], line: bytes, inputs: int, tokens: int
    ) -> None:
        """One request that passed the build's rules: the validator's verdict, then write."""
        if not self.part.fits(len(line), inputs, tokens):
            self._next_part()
        issues = self.part.validator.check_record(record, len(line), raw=line)
        problems = [issue for issue in issues if issue.severity == "error"]
        if problems:
            self._reject(index, record.get("custom_id"), record, problems)
            return
        for issue in issues:
            self._warn(index, record["custom_id"], issue)
        self.part.write(line, inputs, tokens)

    def finish(self) -> BuildResult:
        self._flush()
        self._next_part()
        self.rejects.close()
        if not self.done:
            if self.rejected:
                raise InvalidInputError(
                    f"all {self.rejected:,} requests are invalid; nothing was written. "
                    f"The first: {self.first_reject}"
                )
            raise InvalidInputError("the input has no requests; a batch needs one or more")
        paths, rejects_file = self.files.commit(
            [done.path for done in self.done], self.rejects.path
        )
        return BuildResult(
            outputs=[
                dataclasses.replace(done, path=path)
                for path, done in zip(paths, self.done, strict=True)
            ],
            endpoint=self.endpoint.url,
            model=self.model,
            rejected=self.rejected,
            rejects_file=rejects_file,
            warnings=self.warnings,
            warnings_total=self.warnings_total,
        )

    # -- steps ------------------------------------------------------------------------------

    def _record(self, index: int, item: Any) -> dict[str, Any] | list[Issue]:
        """The full line for ``item`` (custom_id, method and url filled in), or why not."""
        url = self.endpoint.url
        if isinstance(item, tuple) and len(item) == 2:
            self._explicit_id()
            return {"custom_id": item[0], "method": "POST", "url": url, "body": item[1]}
        if not isinstance(item, dict):
            message = (
                "each request must be a body (dict), a full line (dict with custom_id, method, "
                f"url, body) or a (custom_id, body) pair, got {type(item).__name__}"
            )
            return [Issue(None, "invalid_type", None, message)]
        if _LINE_KEY_SET.isdisjoint(item):
            return {
                "custom_id": self.custom_id(index, item),
                "method": "POST",
                "url": url,
                "body": item,
            }
        if "custom_id" in item:
            self._explicit_id()
        record: dict[str, Any] = {
            "custom_id": (
                item["custom_id"]
                if "custom_id" in item
                else self.custom_id(index, item.get("body"))
            ),
            "method": item.get("method", "POST"),
            "url": item.get("url", url),
        }
        if "body" in item:
            record["body"] = item["body"]
        # Unknown top-level keys stay: the validator warns about them, as validate does.
        record.update((key, value) for key, value in item.items() if key not in LINE_KEYS)
        return record

    def _check_build_rules(self, record: dict[str, Any]) -> list[Issue]:
        """One model for the build, and custom_ids unique across all its files."""
        problems: list[Issue] = []
        body = record.get("body")
        if isinstance(body, dict):
            if "model" not in body:
                if self.fill_model:
                    record["body"] = {"model": self.model, **body}  # never change the caller's
            elif isinstance(body["model"], str):
                if self.model is None:
                    self.model = body["model"]
                elif body["model"] != self.model:
                    source = "model= (--model)" if self.fill_model else "the first request"
                    problems.append(
                        Issue(
                            None,
                            "model_mismatch",
                            "body.model",
                            f'body.model is "{body["model"]}" but the build uses '
                            f'"{self.model}" (from {source}); a batch uses one model',
                        )
                    )
        custom_id = record.get("custom_id")
        if isinstance(custom_id, str) and custom_id and not self.seen.add(custom_id):
            problems.append(
                Issue(
                    None,
                    "duplicate_custom_id",
                    "custom_id",
                    f"{schemas.show(custom_id)} was already used by an earlier request; "
                    "custom_id must be unique in the whole build",
                )
            )
        return problems

    def _check_size(self, nbytes: int, inputs: int, tokens: int) -> list[Issue]:
        """A request that would not fit even in an empty file (it is never split inside)."""
        limits = self.limits
        if nbytes > limits.max_bytes:
            message = (
                f"the request takes {nbytes:,} bytes, more than a whole file may hold "
                f"({limits.max_bytes:,})"
            )
            return [Issue(None, "file_too_large", None, message)]
        if inputs > limits.max_embedding_inputs:
            message = (
                f"the request has {inputs:,} embedding inputs, more than a whole file may hold "
                f"({limits.max_embedding_inputs:,}); split it into smaller requests"
            )
            return [Issue(None, "too_many_embedding_inputs", "body.input", message)]
        if self.tokens is not None and tokens > self.tokens.limit:
            message = (
                f"the request has {tokens:,} prompt tokens, more than a whole file may hold "
                f"({self.tokens.limit:,}); shorten it"
            )
            return [Issue(None, TOKEN_LIMIT_EXCEEDED, None, message)]
        return []

    def _next_part(self) -> None:
        self._flush()
        part = self.part
        part.writer.close()
        if part.writer.path is not None:
            self.done.append(
                OutputFile(part.writer.path, part.requests, part.bytes, part.embedding_inputs)
            )
        self.part = self._new_part()

    def _new_part(self) -> Part:
        max_tokens = None if self.tokens is None else self.tokens.limit
        return Part(self.files, self.endpoint.url, self.limits, max_tokens)

    def _warn(self, index: int, custom_id: Any, issue: Issue) -> None:
        self.warnings_total += 1
        if len(self.warnings) < DEFAULT_MAX_ISSUES:
            self.warnings.append(RequestIssue(index, custom_id, issue))

    def _reject(self, index: int, custom_id: Any, request: Any, problems: list[Issue]) -> None:
        self._flush()  # the requests before this one first, in order
        if self.on_invalid == "raise":
            raise InvalidRequestError(index, custom_id, problems)
        if not self.rejected:
            self.first_reject = str(InvalidRequestError(index, custom_id, problems))
        self.rejected += 1
        row = {
            "index": index,
            "custom_id": custom_id,
            "errors": [
                {"code": issue.code, "param": issue.param, "message": issue.message}
                for issue in problems
            ],
            "request": request,
        }
        options = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
        self.rejects.write(escape_line_separators(orjson.dumps(row, default=repr, option=options)))
