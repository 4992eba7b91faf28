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
  on the same server, which refuses any request that carries an Authorization header.
* Bearer auth on everything but the presigned URL (401, echoing the key it got, like some
  real servers do: the client must redact it).

Tests queue faults per route (:class:`Fault`) and read every request back from
``server.requests``.  Run standalone with ``python -m tests.servers.fake_orq --port N``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
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

import pytest

DEFAULT_KEY = "sk-fake-orq-key"
#: Uploads up to this size are kept (for output files and assertions); larger ones are counted.
KEEP_CONTENT_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

Route = Literal["upload", "create", "list", "retrieve", "cancel", "content", "download"]
ROUTES: tuple[Route, ...] = (
    "upload",
    "create",
    "list",
    "retrieve",
    "cancel",
    "content",
    "download",
)


# --- faults -----------------------------------------------------------------------------------


@dataclass
class Fault:
    """One misbehaviour for the next request to a route.

    ``kind``: ``"status"`` answers ``status`` (with ``headers`` and ``body``) instead of doing
    the work, or after doing it when ``after`` is set; ``"drop"`` closes the connection
    without an answer, after doing the work when ``after`` is set; ``"sleep"`` does the work,
    then waits ``seconds`` before answering (past the client's read timeout).
    """

    kind: Literal["status", "drop", "sleep"] = "status"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    after: bool = False
    seconds: float = 0.0

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


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    route: str | None
    body_bytes: int
    time: float


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
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # insertion order = creation order
        self._retrieves: dict[str, int] = {}
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
            self.batches[batch["id"]] = batch
            self._retrieves[batch["id"]] = 0
            return 200, dict(batch)

    def advance(self, batch_id: str) -> dict[str, Any] | None:
        """One retrieve: maybe move the batch a step along :attr:`progression`."""
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if batch["status"] in self.progression and batch["status"] != "cancelling":
                self._retrieves[batch_id] += 1
                step = min(
                    self._retrieves[batch_id] // self.steps_per_status, len(self.progression) - 1
                )
                new_status = self.progression[step]
                if new_status != batch["status"]:
                    batch["status"] = new_status
                    if new_status == "completed":
                        self._complete(batch)
            elif batch["status"] == "cancelling":
                batch["status"] = "cancelled"
            return dict(batch)

    def _complete(self, batch: dict[str, Any]) -> None:
        source = self.files[batch["input_file_id"]].content or b""
        lines = []
        for number, raw in enumerate(source.splitlines(), 1):
            custom_id = json.loads(raw).get("custom_id") if raw.strip() else None
            response = {"status_code": 200, "request_id": f"req_{number}", "body": {"ok": True}}
            lines.append({"id": f"br_{number}", "custom_id": custom_id, "response": response})
        content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        output = self.store_file("output.jsonl", "batch_output", content)
        batch["output_file_id"] = output.id
        total = batch["request_counts"]["total"]
        batch["request_counts"] = {"total": total, "completed": total, "failed": 0}
        batch["completed_at"] = int(time.time())

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
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    kept: bytearray | None = field(default_factory=bytearray)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.digest.update(data)
        if self.kept is not None:
            if len(self.kept) + len(data) > KEEP_CONTENT_BYTES:
                self.kept = None  # too big to keep: only count and hash
            else:
                self.kept += data


def parse_multipart(read: Callable[[int], bytes], length: int, boundary: bytes) -> list[_Part]:
    """Parse a multipart/form-data body chunk by chunk; memory stays at about one chunk."""
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
        fake.requests.append(
            RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers=dict(self.headers.items()),
                route=route,
                body_bytes=length,
                time=time.monotonic(),
            )
        )
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
                self._send_json(fault.status, fault.body, fault.headers)
            return
        handler = getattr(self, f"_do_{route}")
        status, body, headers = handler(args, parts.query, length)
        if fault is None:
            self._send_json(status, body, headers)
        elif fault.kind == "drop":
            self._drop()
        elif fault.kind == "sleep":
            time.sleep(fault.seconds)
            with contextlib.suppress(OSError):
                self._send_json(status, body, headers)
        else:
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
            parts = parse_multipart(self._read, length, match.group(1).encode())
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
        if stored is None or stored.content is None:
            return 404, "<Error><Code>NoSuchKey</Code></Error>", {}
        return 200, stored.content, {"Content-Type": "application/octet-stream"}

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

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
            headers.setdefault("Content-Type", "application/xml")
        else:
            payload = json.dumps(body if body is not None else {}).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(
            status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        )
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()


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
    options = parser.parse_args(argv)
    with FakeOrq(options.host, options.port) as server:
        server.state.api_key = options.api_key
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
