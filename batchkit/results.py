"""A finished batch's answers, joined to its requests; and the file of requests to retry.

The server writes two files (CONTRACT.md section 6): the output file (answers, including
HTTP failures of single requests) and the error file (requests that never ran, and failures
of some servers), neither in input order.  :func:`iter_results` reads both and yields one
:class:`Result` per request:

- without the input, in the files' order, each custom_id once;
- with the input, in input order, every request exactly once: a request that neither file
  mentions is ``missing`` (cancelled and expired batches often leave some out).

Anything odd in the files (a line that is not JSON, a line with no custom_id, a custom_id
seen twice or not in the input) is kept in :attr:`ResultJoin.problems`, never silently
dropped or doubled.

Memory does not grow with the answers: a first pass keeps only each answer's place in its
file (custom_id, offset, length), and the join reads each answer back when its request comes.
What is written from the results (the results file, the retry file, the summary) is in
:mod:`batchkit.result_files`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import orjson

from batchkit.errors import InvalidInputError
from batchkit.lines import LongLine, open_binary, read_lines

__all__ = [
    "STATUSES",
    "JoinProblem",
    "Result",
    "ResultError",
    "ResultJoin",
    "iter_results",
    "numbered_lines",
    "should_retry",
]

Status = Literal["succeeded", "failed", "expired", "cancelled", "missing"]
STATUSES: tuple[Status, ...] = ("succeeded", "failed", "expired", "cancelled", "missing")
#: HTTP answers of one request that are worth sending again: the request itself was fine.
RETRY_HTTP_STATUSES = frozenset({408, 409, 429})
#: Error codes a server writes for requests that never ran.
_NEVER_RAN = {"batch_expired": "expired", "batch_cancelled": "cancelled"}
#: A result line is never longer than this (a whole output file is at most this on the
#: providers that publish a limit); longer lines are reported, not held.
MAX_LINE = 256 * 1024 * 1024

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ResultError:
    """Why a request did not succeed: the line's ``error``, or its response body's error."""

    code: str | None
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass(slots=True)
class Result:
    """The outcome of one request.  ``line`` is its 1-based line in the input, when known."""

    custom_id: str
    status: Status
    status_code: int | None = None
    body: Any = None
    error: ResultError | None = None
    usage: dict[str, Any] | None = None
    line: int | None = None
    #: The request's body, only when the join was asked for it (``include_request``).
    request: Any = None

    def to_dict(self) -> dict[str, Any]:
        document = {
            "custom_id": self.custom_id,
            "status": self.status,
            "status_code": self.status_code,
            "body": self.body,
            "error": self.error.to_dict() if self.error else None,
            "usage": self.usage,
            "line": self.line,
        }
        if self.request is not None:
            document["request"] = self.request
        return document


@dataclass(frozen=True)
class JoinProblem:
    """Something in a results file that could not be joined as it is."""

    path: str
    line: int | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "code": self.code, "message": self.message}


def should_retry(result: Result, *, retry_all: bool = False) -> bool:
    """Is ``result`` worth sending again?

    Requests that never ran (expired, cancelled, missing) always are.  Failures are when the
    answer says "not now" (408, 409, 429, 5xx) or gave no status at all (the request failed
    before the model answered, as llama-stack reports upstream errors); other 4xx answers
    would fail again, so only ``retry_all`` includes them.
    """
    if result.status == "succeeded":
        return False
    if result.status != "failed" or retry_all:
        return True
    code = result.status_code
    return code is None or code in RETRY_HTTP_STATUSES or 500 <= code <= 599


def parse_result_line(record: dict[str, Any], line: int | None = None) -> Result:
    """One line of an output or error file as a :class:`Result`; ``line`` is the request's.

    Liberal in what it reads: ``response.body`` may be a JSON string (llama-stack), an error
    line may have ``type`` and ``message`` but no ``code`` and no ``response``, and ``error``
    may be absent rather than null.
    """
    response = record.get("response")
    if record.get("error") is None and type(response) is dict:
        # The common case first, answered with a few tests: a 2xx answer.
        code = response.get("status_code")
        if type(code) is int and 200 <= code <= 299:
            body = _decoded(response.get("body"))
            usage = body.get("usage") if type(body) is dict else None
            usage = usage if type(usage) is dict else None
            return Result(record["custom_id"], "succeeded", code, body, None, usage, line)
    return _parse_other(record, response, line)


def _parse_other(record: dict[str, Any], response: Any, line: int | None) -> Result:
    """:func:`parse_result_line` for everything but a plain success."""
    status_code: int | None = None
    body: Any = None
    if isinstance(response, dict):
        code = response.get("status_code")
        status_code = code if type(code) is int else None
        body = _decoded(response.get("body"))
    line_error = _error_of(record.get("error"))
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else None
    status: Status
    if line_error is not None and line_error.code in _NEVER_RAN:
        status = _NEVER_RAN[line_error.code]  # type: ignore[assignment]
    elif line_error is None and status_code is not None and 200 <= status_code <= 299:
        status = "succeeded"
    else:
        status = "failed"
    error = line_error
    if error is None and status == "failed" and isinstance(body, dict):
        error = _error_of(body.get("error"))
    if error is None and status == "failed":
        error = ResultError(None, f"HTTP {status_code}" if status_code else "no response")
    return Result(record["custom_id"], status, status_code, body, error, usage, line)


def _decoded(body: Any) -> Any:
    if isinstance(body, str):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
    return body


def _error_of(value: Any) -> ResultError | None:
    if isinstance(value, dict):
        code = value.get("code") or value.get("type")
        message = value.get("message")
        return ResultError(
            str(code) if code is not None else None,
            str(message) if message is not None else None,
        )
    if isinstance(value, str) and value:
        return ResultError(None, value)
    return None


# --- reading the files --------------------------------------------------------------------

_CUSTOM_ID_KEY = b'"custom_id"'
#: How batchkit writes a request line: the id first.
_LEADING_KEY = b'{"custom_id"'
#: The value when it has no escapes (ids nearly never do): its bytes are the string.
_PLAIN_VALUE = re.compile(rb'\s*:\s*"([^"\\]*)"')


def _peek_custom_id(raw: bytes, start: int = 0, end: int | None = None) -> str | None:
    """The custom_id of the line ``raw[start:end]`` without parsing it, or ``None`` when unsure.

    The first ``"custom_id"`` of the line is its top-level key when its opening quote is not
    escaped (no backslash before it), a colon follows it (so it is a key, not a value), and
    no other object was opened before it (one ``{`` before it).  Then its string value is read
    on the spot when it has no escapes; otherwise the caller parses the whole line.  The join
    parses every line it uses anyway and checks the id again.  (The line is given by its
    bounds in a larger buffer, so that the index pass never copies a line.)
    """
    end = len(raw) if end is None else end
    if raw.startswith(_LEADING_KEY, start):  # the id first, as batchkit writes requests
        at = start + 1
    else:
        at = raw.find(_CUSTOM_ID_KEY, start, end)
        if at <= start or raw[at - 1] == 0x5C or raw.count(b"{", start, at) != 1:
            return None
    after = at + len(_CUSTOM_ID_KEY)
    if raw.startswith(b':"', after):  # compact JSON: the value right after the colon
        close = raw.find(b'"', after + 2, end)
        value = raw[after + 2 : close]
        if close < 0 or 0x5C in value:
            return None
    else:
        match = _PLAIN_VALUE.match(raw, after, end)
        if match is None:
            return None
        value = match.group(1)
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


#: Where one answer is: ``(file number, byte offset, length, line number)``.  A tuple, not a
#: dataclass: the index holds one per request and is built at the speed of reading.
_Place = tuple[int, int, int, int]


@dataclass
class _Source:
    """One results file: read in order through its stream, and by place with ``pread``
    (answers come in any order: one system call each, and the stream's buffer is kept)."""

    path: str
    stream: BinaryIO
    #: Lines that were JSON objects with a custom_id; a file with none is not a results file.
    usable: int = 0
    unusable: int = 0

    def __post_init__(self) -> None:
        #: For ``os.pread``: one system call per answer, and the stream's buffer is kept.
        self.fd = self.stream.fileno()

    def close(self) -> None:
        self.stream.close()


class ResultJoin:
    """The results of one batch, iterable once; ``problems`` fills up while it is iterated.

    ``output`` and ``errors`` are the server's two files (either may be ``None``: a batch
    where every request failed has no output file); ``input`` is the batch file that was
    submitted.  With ``include_request`` each result carries its request's body (which
    needs the input).  Use as a context manager, or iterate to the end, so that the files
    close.
    """

    def __init__(
        self,
        output: PathLike | None,
        errors: PathLike | None = None,
        input: PathLike | None = None,
        *,
        include_request: bool = False,
    ) -> None:
        self.problems: list[JoinProblem] = []
        self.input = str(input) if input is not None else None
        self.include_request = include_request
        self._sources: list[_Source] = []
        try:
            for path, what in ((output, "output file"), (errors, "error file")):
                if path is not None:
                    self._sources.append(_Source(str(path), open_binary(path, f"the {what}")))
            self._input_stream = open_binary(input, "the input file") if input is not None else None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for source in self._sources:
            source.close()
        if getattr(self, "_input_stream", None) is not None:
            self._input_stream.close()  # type: ignore[union-attr]

    def __enter__(self) -> ResultJoin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Result]:
        try:
            if self._input_stream is None:
                yield from self._in_file_order()
            else:
                yield from self._in_input_order(self._input_stream)
        finally:
            self.close()

    # -- without the input: each file in its order ------------------------------------------

    def _in_file_order(self) -> Iterator[Result]:
        seen: dict[str, tuple[str, int]] = {}
        for source in self._sources:
            for number, raw in self._lines(source):
                result = self._parse(source, number, raw)
                if result is None:
                    continue
                first = seen.setdefault(result.custom_id, (source.path, number))
                if first != (source.path, number):
                    self._duplicate(source.path, number, result.custom_id, first)
                    continue
                yield result
            self._check_usable(source)

    # -- with the input: input order, every request once -------------------------------------

    def _in_input_order(self, input_stream: BinaryIO) -> Iterator[Result]:
        index = self._index()
        taken: dict[str, int] = {}
        number = 0
        for data, _, entries in _line_blocks(input_stream):
            for entry in entries:
                number += 1
                if type(entry) is LongLine:
                    message = f"the line is {entry.length:,} bytes, longer than any batch request"
                    self._problem(self.input, number, "invalid_request_line", message)
                    continue
                start, end = entry  # type: ignore[misc]
                record = None
                custom_id = None if self.include_request else _peek_custom_id(data, start, end)
                if custom_id is None:  # the request itself is wanted, or its id is not plain
                    raw = data[start:end]
                    if raw.isspace():
                        continue
                    record = _loads(raw)
                    custom_id = _custom_id_of(record)
                if custom_id is None:
                    self._problem(
                        self.input, number, "missing_custom_id", "the request has no custom_id"
                    )
                    continue
                first = taken.setdefault(custom_id, number)
                if first != number:
                    self._problem(
                        self.input,
                        number,
                        "duplicate_custom_id",
                        f"custom_id {custom_id!r} was already used on line {first}; its "
                        "answer is joined to that line only",
                    )
                    continue
                place = index.pop(custom_id, None)
                result = self._read(place, custom_id, number) if place is not None else None
                result = result or Result(custom_id, "missing", line=number)
                if self.include_request and isinstance(record, dict):
                    result.request = record.get("body")
                yield result
        for custom_id, place in index.items():
            self._problem(
                self._sources[place[0]].path,
                place[3],
                "unknown_custom_id",
                f"custom_id {custom_id!r} is not in the input {self.input}",
            )
            result = self._read(place, custom_id, None)
            if result is not None:
                yield result

    def _index(self) -> dict[str, _Place]:
        """Pass 1: each answer's place, the first one of each custom_id.

        The hot loop of the join: it reads every byte of a 200 MB output file.  So it reads
        1 MiB blocks and finds each line's custom_id in place (:func:`_line_blocks`), without
        making a bytes object per line; only a line whose id cannot be read so is parsed.
        """
        index: dict[str, _Place] = {}
        for number_of_source, source in enumerate(self._sources):
            number = peeked = 0
            for data, offset, entries in _line_blocks(source.stream):
                for entry in entries:
                    number += 1
                    if type(entry) is LongLine:
                        self._too_long(source, number, entry.length)
                        continue
                    start, end = entry  # type: ignore[misc]
                    custom_id = _peek_custom_id(data, start, end)
                    if custom_id is not None:
                        peeked += 1
                    else:
                        parsed = self._parse(source, number, data[start:end])
                        custom_id = parsed.custom_id if parsed is not None else None
                    if custom_id is None:
                        continue
                    first = index.get(custom_id)
                    if first is None:
                        index[custom_id] = (number_of_source, offset + start, end - start, number)
                    else:
                        where = (self._sources[first[0]].path, first[3])
                        self._duplicate(source.path, number, custom_id, where)
            source.usable += peeked
            self._check_usable(source)
        return index

    def _read(self, place: _Place, custom_id: str, line: int | None) -> Result | None:
        number_of_source, offset, length, number = place
        source = self._sources[number_of_source]
        try:
            record = orjson.loads(os.pread(source.fd, length, offset))
        except orjson.JSONDecodeError:
            record = None
        if type(record) is not dict or record.get("custom_id") != custom_id:
            # Only a custom_id nested in the body was found (or the file changed meanwhile).
            message = "the line has no custom_id of its own (only inside its response)"
            self._problem(source.path, number, "missing_custom_id", message)
            return None
        return parse_result_line(record, line)

    # -- shared ------------------------------------------------------------------------------

    def _lines(self, source: _Source) -> Iterator[tuple[int, bytes]]:
        """``(number, line)`` of each line of the file; an over-long line is a problem."""
        source.stream.seek(0)
        for number, raw in numbered_lines(source.stream):
            if isinstance(raw, LongLine):
                self._too_long(source, number, raw.length)
            else:
                yield number, raw

    def _too_long(self, source: _Source, number: int, length: int) -> None:
        message = f"the line is {length:,} bytes, too long for a result line"
        self._problem(source.path, number, "invalid_result", message)

    def _parse(self, source: _Source, number: int, raw: bytes) -> Result | None:
        if not raw.strip():
            return None
        record = _loads(raw)
        if not isinstance(record, dict):
            source.unusable += 1
            self._problem(source.path, number, "invalid_json_line", "the line is not a JSON object")
            return None
        if not isinstance(record.get("custom_id"), str):
            source.unusable += 1
            self._problem(source.path, number, "missing_custom_id", "the line has no custom_id")
            return None
        source.usable += 1
        return parse_result_line(record)

    def _check_usable(self, source: _Source) -> None:
        if source.unusable and not source.usable:
            raise InvalidInputError(
                f"{source.path} is not a batch results file: none of its lines is a JSON "
                f"object with a custom_id (first problem: {self._first_problem(source.path)})"
            )

    def _first_problem(self, path: str) -> str:
        for problem in self.problems:
            if problem.path == path:
                return f"line {problem.line}: {problem.message}"
        return "none"

    def _duplicate(self, path: str, line: int, custom_id: str, first: tuple[str, int]) -> None:
        self._problem(
            path,
            line,
            "duplicate_result",
            f"custom_id {custom_id!r} already has an answer ({first[0]}:{first[1]}); this one "
            "is left out",
        )

    def _problem(self, path: str | None, line: int | None, code: str, message: str) -> None:
        self.problems.append(JoinProblem(path or "<input>", line, code, message))


#: The index pass reads the results files in blocks of this size.
_BLOCK = 1 << 20


#: A line of a block: ``(start, end)`` in the block's buffer, or one too long to keep.
_Entry = tuple[int, int] | LongLine


def _line_blocks(stream: BinaryIO) -> Iterator[tuple[bytes, int, list[_Entry]]]:
    """The lines of ``stream``, a block at a time: ``(buffer, offset, entries)``.

    Each entry is a line ``buffer[start:end]`` (line end included) at file offset
    ``offset + start``, or a :class:`LongLine` past :data:`MAX_LINE`, let go as it was read
    and reported by its length.  A block's lines are found in the block itself, never
    copied; only a line that spans two blocks is put together, as a buffer of its own.  A
    list a block, not a line at a time: the join's two passes handle every line of a 200 MB
    file, and a generator step a line costs more than finding the line.
    """
    stream.seek(0)
    offset = 0  # the file offset of the current block
    pieces: list[bytes] = []  # the start of a line that the blocks so far did not finish
    held = 0  # their length
    skipped = 0  # bytes of an over-long line let go so far
    while block := stream.read(_BLOCK):
        pos = 0
        first = block.find(b"\n")
        if first < 0:  # the whole block is inside one line
            if skipped:
                skipped += len(block)
            else:
                pieces.append(block)
                held += len(block)
                if held > MAX_LINE:
                    skipped, pieces, held = held, [], 0
            offset += len(block)
            continue
        if skipped:
            yield block, offset, [LongLine(skipped + first + 1)]
            skipped, pos = 0, first + 1
        elif pieces:
            line = b"".join([*pieces, block[: first + 1]])
            entry: _Entry = (0, len(line)) if len(line) <= MAX_LINE else LongLine(len(line))
            yield line, offset - held, [entry]
            pieces, held, pos = [], 0, first + 1
        entries: list[_Entry] = []
        append, find = entries.append, block.find
        while (newline := find(b"\n", pos)) >= 0:
            end = newline + 1
            append((pos, end) if end - pos <= MAX_LINE else LongLine(end - pos))
            pos = end
        if entries:
            yield block, offset, entries
        if pos < len(block):
            pieces, held = [block[pos:]], len(block) - pos
            if held > MAX_LINE:
                skipped, pieces, held = held, [], 0
        offset += len(block)
    if skipped:
        yield b"", offset, [LongLine(skipped)]
    elif pieces:
        line = b"".join(pieces)
        last: _Entry = (0, len(line)) if len(line) <= MAX_LINE else LongLine(len(line))
        yield line, offset - held, [last]


def numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | LongLine]]:
    return enumerate(read_lines(stream, MAX_LINE), start=1)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _custom_id_of(record: Any) -> str | None:
    if isinstance(record, dict) and isinstance(record.get("custom_id"), str):
        return str(record["custom_id"])
    return None


def iter_results(
    output: PathLike | None,
    errors: PathLike | None = None,
    input: PathLike | None = None,
    *,
    include_request: bool = False,
) -> ResultJoin:
    """The results of a batch: see :class:`ResultJoin` (iterate it; read ``problems`` after)."""
    return ResultJoin(output, errors, input, include_request=include_request)
