"""A stateful fake of the orq.ai Files and Batches API (CONTRACT.md section 4), with faults.

Neither llmock nor Prism speaks orq's paths and shapes, and neither can drop a connection
right after storing a batch, which is the case that proves "one submit, at most one batch".
So this fake does, on real HTTP over loopback:

* ``POST /v2/files`` (multipart, read streamed: only small files are kept in memory),
  answering in orq's nested ``{"file": {...}}`` or older flat ``{"_id"...}`` shape;
  a name not ending in ``.jsonl`` is refused with a 400, a missing ``purpose`` files the
  upload as ``retrieval`` (which a later create then refuses), as the real service does.
* ``POST/GET /v2/proxy/batch`` (list with ``after``/``limit``), ``GET .../{id}``,
  ``POST .../{id}/cancel``, and the same under ``/v3/router/batches``.  A batch moves one
  step along ``validating -> in_progress -> completed`` every ``steps_per_status`` retrieves
  and, once completed, has an output file.
* Cancelling a finished batch answers the batch as it is (what orq documents), or, with
  ``state.cancel_finished`` set to 400 or 409, refuses as OpenAI (400, "already in terminal
  status") and llama-stack (409) do.
* ``GET /v2/files/{id}/content`` answers ``{"download_url"}`` pointing at ``/presigned/...``
  on the same server, which refuses any request that carries an Authorization header; with
  ``state.file_content = "bytes"`` it answers the bytes themselves, as OpenAI does.
* ``GET /v3/router/batches/{id}/results`` answers the output file, or the error file when any
  query parameter has the value ``errors`` (orq's parameter name is unconfirmed).
* A batch that ends gets result files scripted per custom_id (:attr:`State.outcomes`, or
  :attr:`State.outcome_plan` for outcomes that change each time a request is sent again, as a
  job's rounds of retries need; :meth:`State.end_batch`) or given byte for byte
  (:meth:`State.set_result_files`); a file may be generated as it is sent
  (:meth:`State.store_generated`), so that a 200 MB download costs the fake no memory.  Result
  files over :data:`KEEP_CONTENT_BYTES` are generated that way too.
* Whole-batch refusals: each entry of :attr:`State.batch_failures` makes the next created batch
  end ``failed`` with those ``errors`` at its first retrieve (:func:`token_limit_errors` is
  OpenAI's enqueued-token refusal).
* Bearer auth on everything but the presigned URL (401, echoing the key it got, like some
  real servers do: the client must redact it).

Tests queue faults per route (:class:`Fault`), read every request back from
``server.requests``, and may act at the moment a route has done its work but not yet answered
(:attr:`State.on_request`: for example kill the client there).  Run standalone with
``python -m tests.servers.fake_orq --port N`` (``--help``: big uploads kept, quick batches).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import random
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

DEFAULT_KEY = "sk-fake-orq-key"
#: Uploads up to this size are kept (for output files and assertions); larger ones are counted
#: (:attr:`State.keep_content_bytes` changes it).  Result files larger than this are generated
#: afresh for each download instead of held.
KEEP_CONTENT_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

Route = Literal["upload", "create", "list", "retrieve", "cancel", "content", "download", "results"]
ROUTES: tuple[Route, ...] = (
    "upload",
    "create",
    "list",
    "retrieve",
    "cancel",
    "content",
    "download",
    "results",
)
#: What happens to one request when its batch ends (:attr:`State.outcomes`): ``succeeded``
#: (an answer in the output file); an HTTP status such as 400 or 500 (an answer with that
#: status, in the error file, as OpenAI writes it); ``failed`` (an error line with no response,
#: as llama-stack writes it); ``expired`` / ``cancelled`` (an error line ``batch_expired`` /
#: ``batch_cancelled``); ``missing`` (in neither file).
Outcome = Literal["succeeded", "failed", "expired", "cancelled", "missing"] | int
TERMINAL = ("completed", "failed", "expired", "cancelled")
#: How a request that :attr:`State.outcomes` does not name ends, by the batch's final status.
_DEFAULT_OUTCOME: dict[str, Outcome] = {
    "completed": "succeeded",
    "expired": "expired",
    "cancelled": "cancelled",
}
Chunks = Iterator[bytes]


# --- faults -----------------------------------------------------------------------------------


@dataclass
class Fault:
    """One misbehaviour for the next request to a route.

    ``kind``: ``"status"`` answers ``status`` (with ``headers`` and ``body``) instead of doing
    the work, or after doing it when ``after`` is set; ``"drop"`` closes the connection
    without an answer, after doing the work when ``after`` is set; ``"sleep"`` does the work,
    then waits ``seconds`` before answering (past the client's read timeout); ``"cut"`` sends
    the status line, the headers (with the full Content-Length) and the first ``at_byte``
    bytes of the body, then closes the connection.
    """

    kind: Literal["status", "drop", "sleep", "cut"] = "status"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    after: bool = False
    seconds: float = 0.0
    at_byte: int = 0

    @classmethod
    def http(
        cls,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        after: bool = False,
    ) -> Fault:
        return cls("status", status, headers or {}, body, after)

    @classmethod
    def rate_limited(
        cls,
        retry_after: float | None = None,
        *,
        http_date: bool = False,
        retry_after_ms: int | None = None,
    ) -> Fault:
        """A 429, with ``Retry-After`` in seconds or as an HTTP date, or ``retry-after-ms``."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = (
                formatdate(time.time() + retry_after, usegmt=True)
                if http_date
                else f"{retry_after:g}"
            )
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        body = {"error": {"code": "rate_limit_exceeded", "message": "slow down", "type": "rate"}}
        return cls("status", 429, headers, body)

    @classmethod
    def drop(cls, *, after: bool = False) -> Fault:
        return cls("drop", after=after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("sleep", seconds=seconds)

    @classmethod
    def cut(cls, at_byte: int) -> Fault:
        """The answer starts well and the connection drops after ``at_byte`` bytes of body."""
        return cls("cut", at_byte=at_byte)


class Faults:
    """Per-route queues of faults; each request to a route takes the next one, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {route: deque() for route in ROUTES}

    def add(self, route: Route, *faults: Fault, times: int = 1) -> None:
        if route not in self._queues:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES}")
        with self._lock:
            for _ in range(times):
                self._queues[route].extend(faults)

    def take(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._queues.get(route)
            return queue.popleft() if queue else None

    def pending(self, route: Route) -> int:
        with self._lock:
            return len(self._queues[route])

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()


# --- state ------------------------------------------------------------------------------------


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    created_at: int
    content: bytes | None  # None when too large to keep
    #: Makes the content as it is sent, for files too large to hold (:meth:`State.store_generated`).
    generate: Callable[[], Chunks] | None = None

    def chunks(self) -> Chunks | None:
        """The content, piece by piece; ``None`` when it was too large to keep."""
        if self.generate is not None:
            return self.generate()
        if self.content is not None:
            return iter((self.content,))
        return None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    route: str | None
    body_bytes: int
    time: float
    #: What was answered: the status and body (a :class:`StoredFile` for a download); set
    #: when the route has done its work, before :attr:`State.on_request` sees it, or when a
    #: fault answered instead.
    status: int | None = None
    answer: Any = None


#: Called as ``on_request(route, request)`` once a route has done its work, before its answer.
RequestHook = Callable[[str, RecordedRequest], None]


def token_limit_errors(model: str = "gpt-4o-mini", limit: int = 2_000_000) -> dict[str, Any]:
    """The ``errors`` of a batch refused for capacity, as OpenAI writes them (CONTRACT.md 6)."""
    message = (
        f"Enqueued token limit reached for {model} in organization org-fake. "
        f"Limit: {limit:,} enqueued tokens. Please try submitting an input file with fewer "
        "tokens, or wait for your other batch jobs to complete."
    )
    error = {"code": "token_limit_exceeded", "message": message, "param": None, "line": None}
    return {"object": "list", "data": [error]}


class State:
    """Everything the fake remembers.  Tests may read and change it directly."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.api_key = DEFAULT_KEY
        #: ``"nested"`` (``{"file": {...}}``) or ``"flat"`` (``{"_id"...}``).
        self.upload_shape: Literal["nested", "flat"] = "nested"
        #: The statuses a batch goes through, one step per ``steps_per_status`` retrieves.
        self.progression: list[str] = ["validating", "in_progress", "completed"]
        self.steps_per_status = 1
        #: How a cancel of a finished batch is answered: ``None`` returns the batch as it is
        #: (orq); 400 refuses as OpenAI does, 409 as llama-stack does.
        self.cancel_finished: int | None = None
        #: How ``/v2/files/{id}/content`` answers: ``{"download_url"}`` (orq) or the bytes
        #: themselves (OpenAI, llama-stack).
        self.file_content: Literal["download_url", "bytes"] = "download_url"
        #: How each request ends when its batch does, by custom_id; the others take the
        #: status's default (``succeeded`` for completed, ``expired``, ``cancelled``).
        self.outcomes: dict[str, Outcome] = {}
        #: The order of the result lines: the input's, reversed, or shuffled (seeded).
        self.result_order: Literal["input", "reversed", "shuffled"] = "input"
        #: Outcomes that change each time a custom_id is sent again: the n-th batch that ends
        #: with a custom_id in it gives the request ``outcome_plan[custom_id][n-1]``; past the
        #: list's end (and for ids not named) :attr:`outcomes` and the defaults apply.
        self.outcome_plan: dict[str, list[Outcome]] = {}
        #: Each entry makes the next created batch end ``failed`` with it as ``errors`` at its
        #: first retrieve (:func:`token_limit_errors`).
        self.batch_failures: deque[dict[str, Any]] = deque()
        #: Uploads up to this many bytes are kept (so batches of them get result files).
        self.keep_content_bytes = KEEP_CONTENT_BYTES
        #: Called once a route has done its work, before its answer is sent.
        self.on_request: RequestHook | None = None
        #: When nothing failed: no error file (OpenAI), or an empty one (llama-stack).
        self.empty_error_file = False
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # insertion order = creation order
        self._retrieves: dict[str, int] = {}
        self._doomed: dict[str, dict[str, Any]] = {}  # batch id -> its errors at first retrieve
        self._sent: dict[str, int] = {}  # custom_id -> ended batches that held it
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}{secrets.token_hex(3)}"

    def create_batch(self, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            file_id = document.get("input_file_id")
            endpoint = document.get("endpoint")
            if not isinstance(file_id, str) or not isinstance(endpoint, str):
                return 400, _router_error(
                    "missing_required_parameter", "input_file_id and endpoint are required"
                )
            stored = self.files.get(file_id)
            if stored is None:
                return 404, _router_error("not_found", f"No such file: {file_id}", "input_file_id")
            if stored.purpose != "batch":
                return 400, _router_error(
                    "invalid_request",
                    f"file {file_id} has purpose {stored.purpose!r}, not 'batch'",
                    "input_file_id",
                )
            metadata = document.get("metadata") or {}
            if len(metadata) > 16 or any(
                len(key) > 64 or not isinstance(value, str) or len(value) > 512
                for key, value in metadata.items()
            ):
                return 400, _router_error("invalid_metadata", "metadata breaks a limit", "metadata")
            requests_total = stored.content.count(b"\n") if stored.content is not None else 0
            batch = {
                "id": self.new_id("batch"),
                "object": "batch",
                "endpoint": endpoint,
                "input_file_id": file_id,
                "completion_window": document.get("completion_window", "24h"),
                "status": self.progression[0],
                "created_at": int(time.time()),
                "request_counts": {"total": requests_total, "completed": 0, "failed": 0},
                "output_file_id": None,
                "error_file_id": None,
                "errors": None,
                "metadata": metadata,
                "x_fake_extra": {"kept": True},
            }
            if "output_expires_after" in document:  # kept so that tests can see what was sent
                batch["output_expires_after"] = document["output_expires_after"]
            self.batches[batch["id"]] = batch
            self._retrieves[batch["id"]] = 0
            if self.batch_failures:
                self._doomed[batch["id"]] = self.batch_failures.popleft()
            return 200, dict(batch)

    def advance(self, batch_id: str) -> dict[str, Any] | None:
        """One retrieve: maybe move the batch a step along :attr:`progression`."""
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if batch["status"] in TERMINAL:  # an ended batch stays as it ended
                pass
            elif batch_id in self._doomed:
                batch["errors"] = self._doomed.pop(batch_id)
                self._end(batch, "failed")
            elif batch["status"] in self.progression and batch["status"] != "cancelling":
                self._retrieves[batch_id] += 1
                step = min(
                    self._retrieves[batch_id] // self.steps_per_status, len(self.progression) - 1
                )
                new_status = self.progression[step]
                if new_status != batch["status"]:
                    if new_status in TERMINAL:
                        self._end(batch, new_status)
                    else:
                        batch["status"] = new_status
            elif batch["status"] == "cancelling":
                self._end(batch, "cancelled")
            return dict(batch)

    def end_batch(
        self,
        batch_id: str,
        status: str = "completed",
        outcomes: dict[str, Outcome] | None = None,
    ) -> dict[str, Any]:
        """End a batch now, with result files written from ``outcomes`` (added to
        :attr:`outcomes`) and :attr:`result_order`; ``failed`` ends it with no files."""
        with self.lock:
            self.outcomes.update(outcomes or {})
            batch = self.batches[batch_id]
            self._end(batch, status)
            return dict(batch)

    def set_result_files(
        self, batch_id: str, output: bytes | None, errors: bytes | None
    ) -> dict[str, Any]:
        """Give a batch these result files, byte for byte (``None``: no such file)."""
        with self.lock:
            batch = self.batches[batch_id]
            for key, content, name in (
                ("output_file_id", output, "output"),
                ("error_file_id", errors, "errors"),
            ):
                stored = (
                    None
                    if content is None
                    else self.store_file(f"{name}.jsonl", "batch_output", content)
                )
                batch[key] = stored.id if stored else None
            return dict(batch)

    def _end(self, batch: dict[str, Any], status: str) -> None:
        batch["status"] = status
        batch[f"{status}_at"] = int(time.time())
        if status not in _DEFAULT_OUTCOME:  # failed: refused as a whole, no files
            return
        default = _DEFAULT_OUTCOME[status]
        output: list[tuple[int, str, Outcome]] = []
        errors: list[tuple[int, str, Outcome]] = []
        counts = {"total": 0, "completed": 0, "failed": 0}
        for number, custom_id in self._ordered(self._custom_ids(batch)):
            outcome = self._outcome(custom_id, default)
            counts["total"] += 1
            if outcome == "missing":
                continue
            if outcome == "succeeded":
                counts["completed"] += 1
                output.append((number, custom_id, outcome))
            else:
                counts["failed"] += 1
                errors.append((number, custom_id, outcome))
        batch["request_counts"] = counts
        for key, lines, name in (
            ("output_file_id", output, "output"),
            ("error_file_id", errors, "errors"),
        ):
            stored = (
                self._store_results(f"{name}.jsonl", lines)
                if lines or (name == "errors" and self.empty_error_file)
                else None
            )
            batch[key] = stored.id if stored else None

    def _outcome(self, custom_id: str, default: Outcome) -> Outcome:
        """How this request ends in a batch ending now (counts one more sending of it)."""
        sent = self._sent.get(custom_id, 0)
        self._sent[custom_id] = sent + 1
        plan = self.outcome_plan.get(custom_id, ())
        if sent < len(plan):
            return plan[sent]
        return self.outcomes.get(custom_id, default)

    def _store_results(self, filename: str, lines: list[tuple[int, str, Outcome]]) -> StoredFile:
        """A result file: held when small, else generated anew for each download."""

        def generate() -> Chunks:
            for start in range(0, len(lines), 1000):
                yield b"".join(result_line(*line) for line in lines[start : start + 1000])

        size = sum(len(chunk) for chunk in generate())
        if size <= KEEP_CONTENT_BYTES:
            return self.store_file(filename, "batch_output", b"".join(generate()))
        return self.store_generated(filename, size, generate)

    def batch_custom_ids(self, batch_id: str) -> list[str]:
        """The custom_ids of a batch's input file, in its order (a kept upload's only)."""
        with self.lock:
            return [custom_id for _, custom_id in self._custom_ids(self.batches[batch_id])]

    def batches_by_metadata(self, key: str) -> dict[str, list[dict[str, Any]]]:
        """Every batch grouped by its ``metadata[key]`` (those without it left out), each
        group in creation order: how a test sees a batch created twice."""
        groups: dict[str, list[dict[str, Any]]] = {}
        with self.lock:
            for batch in self.batches.values():
                value = (batch.get("metadata") or {}).get(key)
                if value is not None:
                    groups.setdefault(value, []).append(dict(batch))
        return groups

    def _custom_ids(self, batch: dict[str, Any]) -> list[tuple[int, str]]:
        source = self.files[batch["input_file_id"]].content or b""
        return [
            (number, orjson.loads(raw).get("custom_id"))
            for number, raw in enumerate(source.splitlines(), 1)
            if raw.strip()
        ]

    def _ordered(self, items: list[tuple[int, str]]) -> list[tuple[int, str]]:
        if self.result_order == "reversed":
            return items[::-1]
        if self.result_order == "shuffled":
            shuffled = list(items)
            random.Random(len(items)).shuffle(shuffled)
            return shuffled
        return items

    def cancel(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, _router_error("not_found", f"No batch found with id '{batch_id}'")
            finished = batch["status"] in ("completed", "failed", "expired", "cancelled")
            if finished and self.cancel_finished is not None:
                message = f"Batch is already in terminal status '{batch['status']}'."
                return self.cancel_finished, _router_error("invalid_request_error", message)
            if not finished:
                batch["status"] = "cancelling"
            return 200, dict(batch)

    def store_generated(
        self, filename: str, size: int, generate: Callable[[], Iterator[bytes]]
    ) -> StoredFile:
        """A file of ``size`` bytes that ``generate()`` makes afresh for every download."""
        with self.lock:
            stored = StoredFile(
                id=self.new_id("file"),
                filename=filename,
                purpose="batch_output",
                bytes=size,
                sha256="",
                created_at=int(time.time()),
                content=None,
                generate=generate,
            )
            self.files[stored.id] = stored
            return stored

    def store_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        with self.lock:
            stored = StoredFile(
                id=self.new_id("file"),
                filename=filename,
                purpose=purpose,
                bytes=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                created_at=int(time.time()),
                content=content,
            )
            self.files[stored.id] = stored
            return stored

    def list_batches(self, after: str | None, limit: int) -> dict[str, Any]:
        with self.lock:
            newest_first = list(reversed(self.batches.values()))
            start = 0
            if after is not None:
                ids = [batch["id"] for batch in newest_first]
                start = ids.index(after) + 1 if after in ids else len(ids)
            page = newest_first[start : start + limit]
            return {
                "object": "list",
                "data": [dict(batch) for batch in page],
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(newest_first),
            }


_NEVER_RAN = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": ("batch_cancelled", "This request was not executed: the batch was cancelled."),
    "failed": ("server_error", "The request failed."),
}


def result_line(number: int, custom_id: str, outcome: Outcome) -> bytes:
    """One line of an output or error file, as OpenAI writes it (CONTRACT.md section 6)."""
    line: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": custom_id}
    if outcome == "succeeded":
        body = {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"answer to {custom_id}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
        line["response"] = {"status_code": 200, "request_id": f"req_{number}", "body": body}
        line["error"] = None
    elif isinstance(outcome, int):
        kind = "server_error" if outcome >= 500 else "invalid_request_error"
        error = {"message": f"HTTP {outcome}", "type": kind, "code": None}
        line["response"] = {
            "status_code": outcome,
            "request_id": f"req_{number}",
            "body": {"error": error},
        }
        line["error"] = None
    else:
        code, message = _NEVER_RAN[outcome]
        line["response"] = None
        line["error"] = {"code": code, "message": message}
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def _router_error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": param, "type": "invalid_request"}}


def _file_error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"message": message, "code": code, "details": details}


# --- multipart, streamed ----------------------------------------------------------------------


class MultipartError(ValueError):
    pass


@dataclass
class _Part:
    name: str
    filename: str | None
    content_type: str | None
    keep: int = KEEP_CONTENT_BYTES
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    kept: bytearray | None = field(default_factory=bytearray)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.digest.update(data)
        if self.kept is not None:
            if len(self.kept) + len(data) > self.keep:
                self.kept = None  # too big to keep: only count and hash
            else:
                self.kept += data


def parse_multipart(
    read: Callable[[int], bytes], length: int, boundary: bytes, keep: int = KEEP_CONTENT_BYTES
) -> list[_Part]:
    """Parse a multipart/form-data body chunk by chunk; memory stays at about one chunk plus
    the parts' first ``keep`` bytes."""
    remaining = length
    buffer = b""

    def fill() -> bool:
        nonlocal remaining, buffer
        if remaining <= 0:
            return False
        chunk = read(min(_CHUNK, remaining))
        if not chunk:
            raise MultipartError("body shorter than Content-Length")
        remaining -= len(chunk)
        buffer += chunk
        return True

    delimiter = b"--" + boundary
    while delimiter + b"\r\n" not in buffer:
        if not fill():
            raise MultipartError("no opening boundary")
    buffer = buffer[buffer.index(delimiter + b"\r\n") + len(delimiter) + 2 :]
    separator = b"\r\n" + delimiter
    parts: list[_Part] = []
    while True:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > 16 * 1024 or not fill():
                raise MultipartError("bad part headers")
        raw_headers, buffer = buffer.split(b"\r\n\r\n", 1)
        headers = {}
        for line in raw_headers.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        part = _Part(
            name=name.group(1) if name else "",
            filename=filename.group(1) if filename else None,
            content_type=headers.get("content-type"),
            keep=keep,
        )
        parts.append(part)
        while True:
            index = buffer.find(separator)
            if index >= 0:
                part.write(buffer[:index])
                buffer = buffer[index + len(separator) :]
                break
            keep = len(separator) - 1  # a separator may straddle two chunks
            if len(buffer) > keep:
                part.write(buffer[:-keep])
                buffer = buffer[-keep:]
            if not fill():
                raise MultipartError("no closing boundary")
        while len(buffer) < 2:
            if not fill():
                raise MultipartError("truncated after a boundary")
        if buffer.startswith(b"--"):
            while fill():  # drain the epilogue
                pass
            return parts
        if not buffer.startswith(b"\r\n"):
            raise MultipartError("garbage after a boundary")
        buffer = buffer[2:]


# --- the HTTP handler -------------------------------------------------------------------------

_BATCH_PREFIXES = ("/v2/proxy/batch", "/v3/router/batches")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, a header write then a body write meets delayed ACKs: 40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # --- dispatch ---

    def _handle(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        route, args = self._route(self.command, parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        self._body_read = 0
        recorded = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=dict(self.headers.items()),
            route=route,
            body_bytes=length,
            time=time.monotonic(),
        )
        fake.requests.append(recorded)
        if route is None:
            self._drain(length)
            self._send_json(
                404, _router_error("not_found", f"no route {self.command} {parts.path}")
            )
            return
        if route != "download" and not self._authorized():
            self._drain(length)
            got = self.headers.get("Authorization", "")
            message = f"Invalid API key provided: {got.removeprefix('Bearer ')!s}"
            self._send_json(401, _router_error("invalid_api_key", message))
            return
        fault = fake.faults.take(route)
        if fault is not None and not fault.after and fault.kind in ("status", "drop"):
            self._drain(length)
            if fault.kind == "drop":
                self._drop()
            else:
                recorded.status, recorded.answer = fault.status, fault.body
                self._send_json(fault.status, fault.body, fault.headers)
            return
        handler = getattr(self, f"_do_{route}")
        status, body, headers = handler(args, parts.query, length)
        recorded.status, recorded.answer = status, body
        hook = fake.state.on_request
        if hook is not None:
            hook(route, recorded)
        if fault is None:
            self._send_json(status, body, headers)
        elif fault.kind == "drop":
            self._drop()
        elif fault.kind == "sleep":
            time.sleep(fault.seconds)
            with contextlib.suppress(OSError):
                self._send_json(status, body, headers)
        elif fault.kind == "cut":
            self._send_json(status, body, headers, cut_at=fault.at_byte)
        else:
            recorded.status, recorded.answer = fault.status, fault.body
            self._send_json(fault.status, fault.body, fault.headers)

    @staticmethod
    def _route(method: str, path: str) -> tuple[str | None, list[str]]:
        if path == "/v2/files" and method == "POST":
            return "upload", []
        match = re.fullmatch(r"/v2/files/([^/]+)/content", path)
        if match and method == "GET":
            return "content", [match.group(1)]
        match = re.fullmatch(r"/presigned/([^/]+)", path)
        if match and method == "GET":
            return "download", [match.group(1)]
        match = re.fullmatch(r"/v3/router/batches/([^/]+)/results", path)
        if match and method == "GET":
            return "results", [match.group(1)]
        for prefix in _BATCH_PREFIXES:
            if path == prefix:
                return ("create" if method == "POST" else "list"), []
            match = re.fullmatch(re.escape(prefix) + r"/([^/]+)", path)
            if match and method == "GET":
                return "retrieve", [match.group(1)]
            match = re.fullmatch(re.escape(prefix) + r"/([^/]+)/cancel", path)
            if match and method == "POST":
                return "cancel", [match.group(1)]
        return None, []

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.fake.state.api_key}"

    # --- routes: each returns (status, body, headers) ---

    def _do_upload(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        state = self.server.fake.state
        match = re.search(r"boundary=\"?([^\";]+)\"?", self.headers.get("Content-Type", ""))
        if not match or "multipart/form-data" not in self.headers.get("Content-Type", ""):
            self._drain(length)
            return 400, _file_error("invalid_content_type", "expected multipart/form-data"), {}
        try:
            parts = parse_multipart(
                self._read, length, match.group(1).encode(), state.keep_content_bytes
            )
        except MultipartError as error:
            self._drain(length)
            return 400, _file_error("invalid_multipart", str(error)), {}
        by_name = {part.name: part for part in parts}
        file_part = by_name.get("file")
        if file_part is None or not file_part.filename:
            return 400, _file_error("missing_file", "a file part is required"), {}
        if not file_part.filename.endswith(".jsonl"):
            return (
                400,
                _file_error(
                    "invalid_file_type",
                    "Only .jsonl files are supported for batch",
                    [{"field": "file", "filename": file_part.filename}],
                ),
                {},
            )
        purpose_part = by_name.get("purpose")
        purpose = bytes(purpose_part.kept or b"").decode() if purpose_part else "retrieval"
        with state.lock:
            stored = StoredFile(
                id=state.new_id("file"),
                filename=file_part.filename,
                purpose=purpose,
                bytes=file_part.size,
                sha256=file_part.digest.hexdigest(),
                created_at=int(time.time()),
                content=bytes(file_part.kept) if file_part.kept is not None else None,
            )
            state.files[stored.id] = stored
            shape = state.upload_shape
        self.server.fake.uploads.append((stored.id, file_part.content_type))
        if shape == "flat":
            body = {
                "_id": stored.id,
                "file_name": stored.filename,
                "bytes": stored.bytes,
                "purpose": stored.purpose,
                "object_name": f"files/{stored.id}",
                "created": "2025-01-01T00:00:00.000Z",
            }
        else:
            body = {
                "file": {
                    "file_id": stored.id,
                    "file_name": stored.filename,
                    "bytes": str(stored.bytes),
                    "purpose": stored.purpose,
                    "created_at": stored.created_at,
                    "workspace_id": "ws_fake",
                }
            }
        return 200, body, {}

    def _do_create(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            document = json.loads(self._read(length) if length else b"{}")
        except ValueError:
            return 400, _router_error("invalid_json", "the body is not JSON"), {}
        if not isinstance(document, dict):
            return 400, _router_error("invalid_json", "the body is not an object"), {}
        status, body = self.server.fake.state.create_batch(document)
        return status, body, {}

    def _do_list(self, args: list[str], query: str, length: int) -> tuple[int, Any, dict[str, str]]:
        self._drain(length)
        params = parse_qs(query)
        try:
            limit = max(1, min(100, int(params.get("limit", ["20"])[0])))
        except ValueError:
            return 400, _router_error("invalid_limit", "limit must be an integer", "limit"), {}
        after = params.get("after", [None])[0]
        return 200, self.server.fake.state.list_batches(after, limit), {}

    def _do_retrieve(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        self._drain(length)
        batch = self.server.fake.state.advance(args[0])
        if batch is None:
            return 404, _router_error("not_found", f"No batch found with id '{args[0]}'"), {}
        return 200, batch, {}

    def _do_cancel(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        self._drain(length)
        status, body = self.server.fake.state.cancel(args[0])
        return status, body, {}

    def _do_content(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        self._drain(length)
        fake = self.server.fake
        if args[0] not in fake.state.files:
            return 404, _file_error("not_found", f"File {args[0]} not found"), {}
        if fake.state.file_content == "bytes":
            return self._file(fake.state.files[args[0]])
        signature = hashlib.sha256((args[0] + fake.signing_key).encode()).hexdigest()[:16]
        url = f"{fake.url}/presigned/{args[0]}?X-Amz-Signature={signature}&X-Amz-Expires=3600"
        return 200, {"download_url": url}, {}

    def _do_download(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        self._drain(length)
        fake = self.server.fake
        if "Authorization" in self.headers:
            # What S3 says when a presigned URL is sent with a second credential.
            return (
                400,
                "<Error><Code>InvalidArgument</Code>"
                "<Message>Only one auth mechanism allowed</Message></Error>",
                {},
            )
        expected = hashlib.sha256((args[0] + fake.signing_key).encode()).hexdigest()[:16]
        if parse_qs(query).get("X-Amz-Signature", [""])[0] != expected:
            return 403, "<Error><Code>SignatureDoesNotMatch</Code></Error>", {}
        stored = fake.state.files.get(args[0])
        if stored is None or stored.chunks() is None:
            return 404, "<Error><Code>NoSuchKey</Code></Error>", {}
        return self._file(stored)

    def _do_results(
        self, args: list[str], query: str, length: int
    ) -> tuple[int, Any, dict[str, str]]:
        """The router's results: the output file, or with any parameter ``=errors`` the error
        file (orq documents the values, not, as far as we found, the parameter's name)."""
        self._drain(length)
        state = self.server.fake.state
        with state.lock:
            batch = state.batches.get(args[0])
            if batch is None:
                return 404, _router_error("not_found", f"No batch found with id '{args[0]}'"), {}
            if batch["status"] not in TERMINAL:
                message = f"Batch {args[0]} is {batch['status']}: its results are not ready."
                return 409, _router_error("batch_not_finished", message), {}
            errors = any("errors" in values for values in parse_qs(query).values())
            file_id = batch["error_file_id" if errors else "output_file_id"]
            stored = state.files.get(file_id) if file_id else None
        if stored is None:
            which = "error" if errors else "output"
            return 404, _router_error("not_found", f"Batch {args[0]} has no {which} file"), {}
        name = f"{args[0]}_{'errors' if errors else 'output'}.jsonl"
        return self._file(stored, {"Content-Disposition": f'attachment; filename="{name}"'})

    @staticmethod
    def _file(
        stored: StoredFile, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        return 200, stored, {"Content-Type": "application/octet-stream", **(headers or {})}

    # --- I/O ---

    def _read(self, size: int) -> bytes:
        data = self.rfile.read(size)
        self._body_read += len(data)
        return data

    def _drain(self, length: int) -> None:
        remaining = length - self._body_read
        while remaining > 0:
            chunk = self._read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)

    def _drop(self) -> None:
        """Close the connection without a byte of answer, as a crashed proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        cut_at: int | None = None,
    ) -> None:
        """Answer; a :class:`StoredFile` body is sent chunk by chunk.  With ``cut_at``, the
        connection drops after that many bytes of the body."""
        headers = dict(headers or {})
        if isinstance(body, StoredFile):
            self._send_file(status, body, headers, cut_at)
            return
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
            headers.setdefault("Content-Type", "application/xml")
        else:
            payload = json.dumps(body if body is not None else {}).encode()
            headers.setdefault("Content-Type", "application/json")
        self._start(status, headers, len(payload))
        if cut_at is not None:
            self.wfile.write(payload[:cut_at])
            self._drop()
            return
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_file(
        self, status: int, stored: StoredFile, headers: dict[str, str], cut_at: int | None
    ) -> None:
        self._start(status, headers, stored.bytes)
        budget = stored.bytes if cut_at is None else cut_at
        with contextlib.suppress(OSError):  # a client that hangs up mid-file is no error here
            for chunk in stored.chunks() or ():
                self.wfile.write(chunk[:budget])
                budget -= min(budget, len(chunk))
                if not budget:
                    break
            self.wfile.flush()
        if cut_at is not None:
            self._drop()

    def _start(self, status: int, headers: dict[str, str], length: int) -> None:
        self.send_response(
            status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        )
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOrq

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hung up on purpose (the tests make them time out)."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


# --- the object tests use --------------------------------------------------------------------


class FakeOrq:
    """The running fake: ``url``, ``state``, ``faults``, ``requests`` (every request seen)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = State()
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        #: (file id, part content type) of every stored upload.
        self.uploads: list[tuple[str, str | None]] = []
        self.signing_key = secrets.token_hex(8)
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str:
        return self.state.api_key

    def start(self) -> FakeOrq:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-orq", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget files, batches, faults and recorded requests (the key stays)."""
        key = self.state.api_key
        self.state = State()
        self.state.api_key = key
        self.faults.clear()
        self.requests.clear()
        self.uploads.clear()

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.route == route]

    def __enter__(self) -> FakeOrq:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture
def fake_orq() -> Iterator[FakeOrq]:
    """A fresh fake orq API on 127.0.0.1 for one test (starting one takes milliseconds)."""
    with FakeOrq() as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--upload-shape", choices=["nested", "flat"], default="nested")
    parser.add_argument(
        "--cancel-finished",
        choices=["batch", "400", "409"],
        default="batch",
        help="how a cancel of a finished batch is answered: the batch (orq), 400 (OpenAI), "
        "409 (llama-stack)",
    )
    parser.add_argument(
        "--steps-per-status",
        type=int,
        default=1,
        help="retrieves per status step (a large number keeps batches running)",
    )
    parser.add_argument(
        "--keep-uploads-mb",
        type=float,
        default=KEEP_CONTENT_BYTES / 2**20,
        help="uploads up to this size are kept, so that their batches get result files "
        "(a benchmark's shards need more than the default)",
    )
    options = parser.parse_args(argv)
    with FakeOrq(options.host, options.port) as server:
        server.state.api_key = options.api_key
        server.state.keep_content_bytes = int(options.keep_uploads_mb * 2**20)
        server.state.upload_shape = options.upload_shape
        server.state.steps_per_status = options.steps_per_status
        if options.cancel_finished != "batch":
            server.state.cancel_finished = int(options.cancel_finished)
        print(f"fake orq listening on {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
