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
the same output removes what it left (see :meth:`_OutputSet.remove_stale_temps`).

Two things make a built file safer than the letter of the limits asks:

- Each file is filled only to just under the ``near_limit`` share of every limit (see
  :func:`fill`), so that every file batchkit writes passes ``batchkit validate --strict``.
- U+2028, U+2029 and U+0085 are written escaped (see :func:`escape_line_separators`): JSON
  allows them raw, but a server that splits lines with a Unicode-aware splitter would cut the
  request there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import secrets
import sys
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from batchkit import linechecks, schemas
from batchkit.endpoints import ENDPOINTS, Endpoint, suggest_endpoint
from batchkit.errors import BatchkitError, InvalidInputError, UsageError
from batchkit.limits import Limits, get_profile
from batchkit.validate import DEFAULT_MAX_ISSUES, Issue, Validator

OnInvalid = Literal["raise", "skip"]
#: ``custom_id(index, body) -> str``: the id of an item that has none (``index`` is 0-based).
CustomIdFunction = Callable[[int, Any], str]
#: ``progress(handled)``: the number of input items handled so far.
ProgressFunction = Callable[[int], None]

LINE_KEYS = ("custom_id", "method", "url", "body")
_LINE_KEY_SET = frozenset(LINE_KEYS)
#: How often (in items) the progress callback is called; it is also called once at the end.
PROGRESS_EVERY = 1000
_WRITE_BUFFER = 1 << 20
#: A temporary of this build's naming pattern older than this, and not locked by a live build,
#: is a leftover of a build that was killed: the next build of the same output removes it.
#: The lock is what protects a live build's files; the age only covers the microseconds
#: between a temporary's creation and its lock, so it is short: a build re-run right after a
#: kill -9 cleans up (a leftover can be 200 MB).
STALE_TEMP_SECONDS = 10
#: Each raw line separator and its JSON escape.
_SEPARATOR_ESCAPES = tuple(
    (char.encode(), f"\\u{ord(char):04x}".encode()) for char in linechecks.LINE_SEPARATORS
)
#: Their first bytes (0xC2, 0xE2).  Most non-ASCII text (accented letters, Cyrillic, CJK,
#: emoji) has neither, and looking for one byte is a memchr: on a 4 KB line about 20 times
#: cheaper than looking for the three sequences.
_SEPARATOR_LEADS = tuple(sorted({raw[:1] for raw, _ in _SEPARATOR_ESCAPES}))


def fill(limit: int, near_limit_ratio: float) -> int:
    """The most of a measure (requests, bytes, embedding inputs) the split puts in one file.

    The largest value under ``limit * near_limit_ratio``: the validator warns (``near_limit``)
    at or over that share, so a file filled to here passes ``validate --strict`` and keeps the
    rest (10% by default) as headroom.  With the default limits: 44,999 requests, 180 MiB less
    one byte, 44,999 embedding inputs.  The comparison is the validator's own, float for
    float, so the two always agree.  Never more than ``limit`` itself (a ratio over 1 turns
    the warning off, not the limit).
    """
    return min(limit, math.ceil(limit * near_limit_ratio) - 1)


def escape_line_separators(line: bytes) -> bytes:
    """``line`` with every raw U+2028, U+2029 and U+0085 written as its ``\\uXXXX`` escape.

    orjson writes them raw, as JSON allows, but a server that splits lines with a Unicode-aware
    splitter (Python's ``str.splitlines``) cuts the request there.  The other characters such a
    splitter breaks on (U+000B, U+000C, U+001C-U+001E) are control characters, which JSON
    escapes anyway.  The replacement is exact on bytes: in valid UTF-8, which orjson writes,
    these byte sequences can only be these characters, and they can only be inside strings.
    An ASCII line (most of them) is answered by one fast test, most others by two memchrs.
    """
    if line.isascii() or not _has_separator_lead(line):
        return line
    for raw, escaped in _SEPARATOR_ESCAPES:
        if raw in line:
            line = line.replace(raw, escaped)
    return line


def _has_separator_lead(line: bytes) -> bool:
    # A loop, not any(...): on this hot path the generator would cost more than the memchrs.
    for lead in _SEPARATOR_LEADS:  # noqa: SIM110
        if line.find(lead) >= 0:
            return True
    return False


def default_custom_id(index: int, body: Any) -> str:
    """``request-000001`` for the first item of the input, ``request-000002`` for the next...

    Stable: the same input gives the same ids.  The number is the item's position (1-based)
    in the whole input, rejected items included, so an id says where its request came from.
    """
    return f"request-{index + 1:06d}"


class InvalidRequestError(InvalidInputError):
    """One request breaks a rule; ``index`` is its 0-based position in the input."""

    def __init__(self, index: int, custom_id: Any, issues: list[Issue]) -> None:
        self.index = index
        self.custom_id = custom_id
        self.issues = issues
        problems = "; ".join(f"{issue.code}: {issue.message}" for issue in issues)
        super().__init__(f"{describe_request(index, custom_id)} is invalid: {problems}")


def describe_request(index: int, custom_id: Any) -> str:
    """``request at index 4 (custom_id "request-000005")``."""
    if custom_id is None:
        return f"request at index {index}"
    return f"request at index {index} (custom_id {schemas.show(custom_id)})"


@dataclass(frozen=True)
class InvalidItem:
    """An input item its reader already knows to be bad (an empty CSV cell, a line not JSON).

    A reader yields one in the item's place, so that the build reports it as it reports any
    invalid request: with ``on_invalid="raise"`` the error, with ``"skip"`` a row of the
    rejects file (``request`` is what the reader could keep of the item, or ``None``).
    """

    issues: tuple[Issue, ...]
    request: Any = None


@dataclass(frozen=True)
class OutputFile:
    """One file of a build and what it holds."""

    path: Path
    requests: int
    bytes: int
    embedding_inputs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "requests": self.requests,
            "bytes": self.bytes,
            "embedding_inputs": self.embedding_inputs,
        }


@dataclass(frozen=True)
class RequestIssue:
    """An issue of one input item: a warning of a written request, or why one was rejected."""

    index: int
    custom_id: Any
    issue: Issue

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "custom_id": self.custom_id,
            "code": self.issue.code,
            "param": self.issue.param,
            "message": self.issue.message,
        }


@dataclass
class BuildResult:
    """What :func:`build_batch` wrote: the fields of ``batchkit build --format json``."""

    outputs: list[OutputFile]
    endpoint: str
    model: str | None
    rejected: int = 0
    rejects_file: Path | None = None
    #: Warnings of written requests (e.g. ``long_custom_id``), at most 1,000 kept.
    warnings: list[RequestIssue] = field(default_factory=list)
    warnings_total: int = 0

    @property
    def files(self) -> list[Path]:
        return [output.path for output in self.outputs]

    @property
    def counts(self) -> list[int]:
        """Requests per file, in file order."""
        return [output.requests for output in self.outputs]

    @property
    def requests(self) -> int:
        return sum(self.counts)

    @property
    def bytes(self) -> int:
        return sum(output.bytes for output in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [output.to_dict() for output in self.outputs],
            "requests": self.requests,
            "bytes": self.bytes,
            "endpoint": self.endpoint,
            "model": self.model,
            "rejected": self.rejected,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "warnings": [warning.to_dict() for warning in self.warnings],
            "warnings_total": self.warnings_total,
        }


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
    - An :class:`InvalidItem` (from a reader that knows an item is bad) is rejected as an
      invalid request is.
    """
    if endpoint not in ENDPOINTS:
        hint = suggest_endpoint(endpoint)
        extra = f" (did you mean {hint}?)" if hint else ""
        raise UsageError(
            f"unknown endpoint {endpoint!r}{extra}: choose one of {', '.join(ENDPOINTS)}"
        )
    if on_invalid not in ("raise", "skip"):
        raise UsageError(f'on_invalid must be "raise" or "skip", got {on_invalid!r}')
    files = _OutputSet(Path(output), overwrite=overwrite)
    builder = _Builder(
        files,
        ENDPOINTS[endpoint],
        limits or get_profile(profile).limits,
        model=model,
        custom_id=custom_id or default_custom_id,
        on_invalid=on_invalid,
    )
    handled = 0
    try:
        for handled, item in enumerate(requests, start=1):
            builder.add(handled - 1, item)
            if progress is not None and handled % PROGRESS_EVERY == 0:
                progress(handled)
        result = builder.finish()
    except BaseException:
        files.discard()
        raise
    if progress is not None:
        progress(handled)
    return result


class _SeenIds:
    """The custom_ids of one build, in about 8 bytes each.

    A Python set of a million ids takes about 90 MB; this open-addressing table keeps only
    each id's 64-bit hash.  Two different ids share a hash with a probability of about
    n²/2⁶⁵ (3·10⁻⁸ for a million ids): then the second is reported as a duplicate.  Python
    randomises string hashes per process, so such a coincidence does not repeat on a re-run.
    """

    _MASK64 = (1 << 64) - 1

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 << 17))  # 1 MB: no growth below 65,536 ids
        self._mask = len(self._slots) - 1
        self._count = 0

    def add(self, custom_id: str) -> bool:
        """Remember ``custom_id``; ``False`` if it was already there."""
        key = hash(custom_id) & self._MASK64 or 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        slot = key & mask
        while found := slots[slot]:
            if found == key:
                return False
            slot = (slot + 1) & mask
        slots[slot] = key
        self._count += 1
        if self._count * 2 > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._mask = len(self._slots) - 1
        self._count = 0
        for key in old:
            if key:
                self._place(key)

    def _place(self, key: int) -> None:
        slot = key & self._mask
        while self._slots[slot]:
            slot = (slot + 1) & self._mask
        self._slots[slot] = key
        self._count += 1


class _OutputSet:
    """The files one build owns: its temporaries and the names they get at the end.

    The names are ``name.jsonl``, ``name-001.jsonl``, ``name-002.jsonl``... (a run numbered
    from 001 without gaps, so an unrelated ``name-2024.jsonl`` is never taken for one) and
    ``name.rejects.jsonl``.  The temporaries are ``.name.<8 hex digits>.tmp``; the build holds
    an exclusive lock (``flock``) on each until it is renamed or removed, which tells a later
    build whether the build that made a temporary is still alive.
    """

    def __init__(self, output: Path, *, overwrite: bool) -> None:
        if output.name == ".jsonl":
            raise UsageError(
                f"{output}: the output needs a file name before .jsonl "
                f"(e.g. {output.parent / 'requests.jsonl'})"
            )
        if output.suffix != ".jsonl":
            raise UsageError(f"{output}: the output must end in .jsonl (the server refuses others)")
        self.directory = output.parent
        self.stem = output.name[: -len(".jsonl")]
        self.overwrite = overwrite
        self._temps: list[Path] = []
        self._locks: list[int] = []
        self._refuse_existing()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _write_error(error, self.directory) from error
        self.remove_stale_temps()

    def single(self) -> Path:
        return self.directory / f"{self.stem}.jsonl"

    def numbered(self, number: int) -> Path:
        return self.directory / f"{self.stem}-{number:03d}.jsonl"

    def rejects(self) -> Path:
        return self.directory / f"{self.stem}.rejects.jsonl"

    def existing(self) -> list[Path]:
        found = [path for path in (self.single(), self.rejects()) if os.path.lexists(path)]
        number = 1
        while os.path.lexists(self.numbered(number)):
            found.append(self.numbered(number))
            number += 1
        return found

    def open_temp(self) -> tuple[Path, BinaryIO]:
        """A new hidden file next to the outputs (so that the final rename is atomic), locked."""
        path = self.directory / f".{self.stem}.{secrets.token_hex(4)}.tmp"
        self._temps.append(path)
        try:
            stream = _open_temp(path)
        except OSError as error:
            raise _write_error(error, path) from error
        try:
            self._locks.append(_locked(path))
        except OSError as error:
            stream.close()
            raise _write_error(error, path) from error
        return path, stream

    def remove_stale_temps(self) -> None:
        """Remove the temporaries a killed build of this output left, and only those.

        A build that ends in an exception, Ctrl-C or SIGTERM (in the CLI) removes its own;
        SIGKILL or a power cut leaves them.  A temporary is stale when no live build holds its
        lock (the kernel drops a dead process's locks, however it died) and it is older than
        :data:`STALE_TEMP_SECONDS` (which covers the instant between a temporary's creation
        and its lock).  So two builds of the same output at once never remove each other's
        temporaries, even a finished file that waited for many minutes for the rest of its
        build.  It is removed while locked, so no build can take it up in between.  Without
        ``flock`` (Windows) liveness cannot be told, and nothing is removed.
        """
        if sys.platform == "win32":
            return
        pattern = re.compile(rf"\.{re.escape(self.stem)}\.[0-9a-f]{{8}}\.tmp")
        cutoff = time.time() - STALE_TEMP_SECONDS
        with contextlib.suppress(OSError), os.scandir(self.directory) as entries:
            for entry in entries:
                if not pattern.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):  # a live build's lock, or it just vanished
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        fd = _locked(Path(entry.path))
                        try:
                            os.unlink(entry.path)
                        finally:
                            os.close(fd)

    def commit(self, parts: list[Path], rejects: Path | None) -> tuple[list[Path], Path | None]:
        """Rename the temporaries to their final names and remove stale outputs."""
        if len(parts) == 1:
            final = [self.single()]
        else:
            final = [self.numbered(number) for number in range(1, len(parts) + 1)]
        rejects_final = self.rejects() if rejects is not None else None
        self._refuse_existing()
        stale = set(self.existing()) - {*final, rejects_final}
        try:
            for temp, path in zip(parts, final, strict=True):
                os.replace(temp, path)
            if rejects is not None and rejects_final is not None:
                os.replace(rejects, rejects_final)
            for path in stale:
                path.unlink(missing_ok=True)
        except OSError as error:
            raise _write_error(error, self.directory) from error
        self._temps.clear()
        self._unlock()
        return final, rejects_final

    def discard(self) -> None:
        """Remove every temporary; never raises (it runs while another error propagates)."""
        for path in self._temps:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        self._temps.clear()
        self._unlock()

    def _unlock(self) -> None:
        for fd in self._locks:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._locks.clear()

    def _refuse_existing(self) -> None:
        if self.overwrite:
            return
        existing = self.existing()
        if existing:
            raise UsageError(
                f"{existing[0]} already exists; use overwrite=True (--force) to replace it"
            )


def _open_temp(path: Path) -> BinaryIO:
    """Create ``path`` for writing (never an existing file).  Tests replace this."""
    return open(path, "xb", buffering=_WRITE_BUFFER)


def _locked(path: Path) -> int:
    """A descriptor holding an exclusive lock on ``path``; OSError if a live build holds one.

    The lock is on a descriptor of its own, so it outlasts the writer's stream: a finished
    file stays locked until the build renames it.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    if sys.platform != "win32":
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
    return fd


def _write_error(error: OSError, where: Path) -> BatchkitError:
    reason = error.strerror or str(error)
    return BatchkitError(f"cannot write {error.filename or where}: {reason}")


class _Writer:
    """One temporary file being written, created on its first line."""

    def __init__(self, files: _OutputSet) -> None:
        self._files = files
        self.path: Path | None = None
        self._stream: BinaryIO | None = None

    def write(self, line: bytes) -> None:
        try:
            if self._stream is None:
                self.path, self._stream = self._files.open_temp()
            self._stream.write(line)
        except OSError as error:
            raise _write_error(error, self.path or self._files.directory) from error

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError as error:
                raise _write_error(error, self.path or self._files.directory) from error


class _Part:
    """One output file: its writer, its validator and what it holds so far."""

    def __init__(self, files: _OutputSet, endpoint: str, limits: Limits) -> None:
        self.writer = _Writer(files)
        # A validator per file: its own set of ids never outgrows one file.
        self.validator = Validator(endpoint, limits)
        self.requests = 0
        self.bytes = 0
        self.embedding_inputs = 0
        ratio = limits.near_limit_ratio
        self._most_requests = fill(limits.max_requests, ratio)
        self._most_bytes = fill(limits.max_bytes, ratio)
        self._most_inputs = fill(limits.max_embedding_inputs, ratio)

    def fits(self, nbytes: int, inputs: int) -> bool:
        """Whether one more request keeps the file within the :func:`fill` of every limit.

        An empty file takes any request (the builder has checked it is within the limits
        themselves): a request over the fill gets a file of its own rather than none.
        """
        return not self.requests or (
            self.requests < self._most_requests
            and self.bytes + nbytes <= self._most_bytes
            and self.embedding_inputs + inputs <= self._most_inputs
        )

    def write(self, line: bytes, inputs: int) -> None:
        self.writer.write(line)
        self.requests += 1
        self.bytes += len(line)
        self.embedding_inputs += inputs


class _Builder:
    """The state of one build: the current file, the ids seen, the rejects."""

    def __init__(
        self,
        files: _OutputSet,
        endpoint: Endpoint,
        limits: Limits,
        *,
        model: str | None,
        custom_id: CustomIdFunction,
        on_invalid: OnInvalid,
    ) -> None:
        self.files = files
        self.endpoint = endpoint
        self.limits = limits
        self.model = model
        self.fill_model = model is not None
        self.custom_id = custom_id
        self.on_invalid = on_invalid
        self.seen = _SeenIds()
        self.part = _Part(files, endpoint.url, limits)
        #: The finished files, under their temporary names (their validators are let go).
        self.done: list[OutputFile] = []
        self.rejects = _Writer(files)
        self.rejected = 0
        self.first_reject = ""
        self.warnings: list[RequestIssue] = []
        self.warnings_total = 0

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
        inputs = 0
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
            problems = self._check_size(len(line), inputs)
        if not problems:
            if not self.part.fits(len(line), inputs):
                self._next_part()  # so that the file a request goes into is the one checking it
            issues = self.part.validator.check_record(record, len(line), raw=line)
            if issues:
                problems = [issue for issue in issues if issue.severity == "error"]
                if not problems:
                    for issue in issues:
                        self._warn(index, record["custom_id"], issue)
        if problems:
            self._reject(index, record.get("custom_id"), record, problems)
            return
        self.part.write(line, inputs)

    def finish(self) -> BuildResult:
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

    def _check_size(self, nbytes: int, inputs: int) -> list[Issue]:
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
        return []

    def _next_part(self) -> None:
        part = self.part
        part.writer.close()
        if part.writer.path is not None:
            self.done.append(
                OutputFile(part.writer.path, part.requests, part.bytes, part.embedding_inputs)
            )
        self.part = _Part(self.files, self.endpoint.url, self.limits)

    def _warn(self, index: int, custom_id: Any, issue: Issue) -> None:
        self.warnings_total += 1
        if len(self.warnings) < DEFAULT_MAX_ISSUES:
            self.warnings.append(RequestIssue(index, custom_id, issue))

    def _reject(self, index: int, custom_id: Any, request: Any, problems: list[Issue]) -> None:
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
