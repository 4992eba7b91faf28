"""The inputs of ``batchkit build`` and ``batchkit run``: JSONL, a JSON array or CSV, read as
requests one at a time.

Every input is UTF-8 (a UTF-8 byte-order mark is skipped); UTF-16 is recognised and refused
with the iconv line that converts it.  A line is read with a bound (the file byte limit), so
memory never grows with the longest line.  A bad item (not JSON, not UTF-8, too long, an
empty prompt cell) is handed to the build as an :class:`~batchkit.build.InvalidItem`, so it is
reported with its ``file:line`` or written to the rejects file like any invalid request.
Apart from the commands because none of it depends on where or how the files are written.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from batchkit.build_result import InvalidItem
from batchkit.endpoints import ENDPOINTS
from batchkit.errors import InvalidInputError, UsageError
from batchkit.issues import Issue
from batchkit.limits import Limits
from batchkit.lines import LongLine, open_binary, read_lines
from batchkit.parse_issues import UTF8_BOM, UTF16_BOMS, parse_issue


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """What the request-building options say about the input."""

    endpoint: str | None
    model: str | None
    prompt_column: str | None
    system: str | None
    id_column: str | None


#: The endpoints whose body has a place for --system: a system message, or instructions.
_SYSTEM_ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
#: The endpoints whose body names its text ``prompt``.  (An /v1/images/edits body also needs
#: its images, which a prompt cell cannot give: the build's validation says so.)
_PROMPT_ENDPOINTS = ("/v1/completions", "/v1/images/generations", "/v1/images/edits", "/v1/videos")


def read_requests(
    paths: tuple[str, ...], options: BuildOptions, limits: Limits
) -> tuple[str, Iterator[Any], Inputs]:
    """The endpoint (``options.endpoint``, else the first request's url), the requests of
    every path in order, and the reader (whose ``where`` names the request last read)."""
    items = Inputs(paths, options, limits)
    requests: Iterator[Any] = iter(items)
    endpoint = options.endpoint
    if endpoint is None:
        endpoint, requests = infer_endpoint(requests, items)
    if options.system and endpoint not in _SYSTEM_ENDPOINTS:
        raise UsageError(f"--system applies to {' and '.join(_SYSTEM_ENDPOINTS)} only")
    items.endpoint = endpoint
    return endpoint, requests, items


def infer_endpoint(requests: Iterator[Any], items: Inputs) -> tuple[str, Iterator[Any]]:
    """The endpoint the first request's url names; the requests, that one included."""
    first = next(requests, None)
    if first is None:
        raise InvalidInputError("the input has no requests; a batch needs one or more")
    if isinstance(first, InvalidItem):  # its own problem comes first, not the missing url
        issue = first.issues[0]
        raise InvalidInputError(f"{items.where}: {issue.code}: {issue.message}")
    url = first.get("url") if isinstance(first, dict) else None
    if url not in ENDPOINTS:
        raise UsageError(
            "--endpoint is required: the first request does not name a batch url "
            f"(choose one of {', '.join(ENDPOINTS)})"
        )
    return str(url), itertools.chain([first], requests)


class Inputs:
    """The requests of every INPUT in order, one at a time.

    ``where`` is the place (``file:line``) of the request last handed out: the builder works
    on one request at a time, so that is the one an error is about.
    """

    def __init__(self, paths: tuple[str, ...], options: BuildOptions, limits: Limits) -> None:
        self.paths = paths
        self.options = options
        self.endpoint = options.endpoint
        #: No line longer than a whole file may hold can become a request: never held whole.
        self.max_line = limits.max_bytes
        self.where = paths[0]

    def __iter__(self) -> Iterator[Any]:
        for path in self.paths:
            name = "<stdin>" if path == "-" else path
            with _open(path) as stream:
                head = stream.peek(64)
                _refuse_utf16(head, name)
                if self.options.prompt_column:
                    yield from self._csv(stream, name)
                    continue
                if head.startswith(UTF8_BOM):
                    stream.read(len(UTF8_BOM))
                    head = head[len(UTF8_BOM) :]
                if head.lstrip().startswith(b"["):
                    yield from self._array(stream, name)
                else:
                    yield from self._lines(stream, name)

    def _lines(self, stream: io.BufferedReader, name: str) -> Iterator[Any]:
        for number, raw in enumerate(read_lines(stream, self.max_line), start=1):
            self.where = f"{name}:{number}"
            if isinstance(raw, LongLine):
                yield _invalid(
                    "file_too_large",
                    f"the line is {raw.length:,} bytes, more than a whole batch file may hold "
                    f"({self.max_line:,} bytes); it was not read",
                )
                continue
            if not raw.strip():
                continue
            try:
                yield orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                yield _not_json(raw, error)

    def _array(self, stream: io.BufferedReader, name: str) -> Iterator[Any]:
        self.where = name
        data = stream.read()
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            bad = _first_bad_byte(data)
            if bad is not None:
                line = data.count(b"\n", 0, bad) + 1
                raise InvalidInputError(f"{name}:{line}: {_NOT_UTF8}") from None
            raise InvalidInputError(f"{name}: not valid JSON ({error})") from None
        if not isinstance(document, list):
            raise InvalidInputError(f"{name}: expected a JSON array of requests")
        for number, item in enumerate(document):
            self.where = f"{name}[{number}]"
            yield item

    def _csv(self, stream: io.BufferedReader, name: str) -> Iterator[Any]:
        # Bad bytes become lone surrogates, found in the cells used, so that the error names
        # the CSV line (a strict decoder fails a chunk ahead, with no line to name).
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.DictReader(text)
        columns = reader.fieldnames
        if not columns:
            raise InvalidInputError(
                f"{name}: the CSV is empty: no header row naming its columns "
                f"(--prompt-column {self.options.prompt_column} needs one)"
            )
        prompt_column = self.options.prompt_column or ""
        id_column = self.options.id_column
        for column in (prompt_column, id_column):
            if column and column not in columns:
                raise UsageError(
                    f"{name}: no column {column!r} (the columns are {', '.join(columns)})"
                )
        for row in reader:
            self.where = f"{name}:{reader.line_num}"
            yield self._csv_item(row, prompt_column, id_column)

    def _csv_item(self, row: dict[str, Any], prompt_column: str, id_column: str | None) -> Any:
        """One CSV row as a request, or the reason it cannot be one."""
        for column in (prompt_column, id_column):
            if column and not _is_utf8(row[column]):
                return _invalid("invalid_encoding", f"column {column!r}: {_NOT_UTF8}")
        prompt = row[prompt_column]
        if prompt is None or not prompt.strip():
            return _invalid(
                "empty_prompt",
                f"the prompt cell (column {prompt_column!r}) is empty; fill it in or remove "
                "the row",
                request=row,
            )
        body = self._body(prompt)
        return (row[id_column], body) if id_column else body

    def _body(self, prompt: str) -> dict[str, Any]:
        """The body a prompt cell becomes: each endpoint names its prompt its own way."""
        if self.endpoint in ("/v1/embeddings", "/v1/moderations"):
            return {"input": prompt}
        if self.endpoint == "/v1/responses":
            system = self.options.system
            return {"instructions": system, "input": prompt} if system else {"input": prompt}
        if self.endpoint in _PROMPT_ENDPOINTS:
            return {"prompt": prompt}
        messages: list[dict[str, Any]] = []
        if self.options.system:
            messages.append({"role": "system", "content": self.options.system})
        messages.append({"role": "user", "content": prompt})
        return {"messages": messages}


_NOT_UTF8 = "bytes that are not UTF-8; save the file as UTF-8"


def _invalid(code: str, message: str, request: Any = None) -> InvalidItem:
    return InvalidItem((Issue(None, code, None, message),), request)


def _not_json(raw: bytes, error: orjson.JSONDecodeError) -> InvalidItem:
    """Why a line is not JSON, in validate's words (bad bytes, NaN, the parser's message)."""
    issue = parse_issue(raw, 0, error)
    kept = raw.decode() if issue.code == "invalid_json_line" else None
    return InvalidItem((dataclasses.replace(issue, line=None),), kept)


def _first_bad_byte(data: bytes) -> int | None:
    """The offset of the first byte of ``data`` that is not UTF-8, if there is one."""
    try:
        data.decode()
    except UnicodeDecodeError as error:
        return error.start
    return None


def _is_utf8(cell: str | None) -> bool:
    """No lone surrogate (a byte the ``surrogateescape`` decoder could not read)."""
    if cell is None or cell.isascii():
        return True
    try:
        cell.encode()
    except UnicodeEncodeError:
        return False
    return True


def _refuse_utf16(head: bytes, name: str) -> None:
    """UTF-16 (by its byte-order mark, or the NUL bytes of its ASCII) is refused, clearly."""
    if head.startswith(UTF16_BOMS):
        how = "it starts with a UTF-16 byte-order mark"
    elif b"\x00" in head:
        how = "it has NUL bytes, as UTF-16 text does"
    else:
        return
    raise InvalidInputError(
        f"{name}: the file is UTF-16 ({how}); batchkit reads UTF-8: convert it "
        f"(e.g. iconv -f UTF-16 -t UTF-8 {name} > converted) and build again"
    )


def _open(path: str) -> contextlib.AbstractContextManager[io.BufferedReader]:
    """The input as a buffered binary stream (``peek`` sniffs a JSON array); stdin stays open."""
    if path == "-":
        stdin: Any = sys.stdin.buffer
        if not isinstance(stdin, io.BufferedReader):
            stdin = io.BufferedReader(stdin)
        return contextlib.nullcontext(stdin)
    return open_binary(path)
