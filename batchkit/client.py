"""The HTTP client for OpenAI-style Files and Batches APIs (orq.ai first).

Why it is built the way it is (DESIGN.md "Never lose or leak", CONTRACT.md section 4):

* One :class:`requests.Session`, so connections are reused, and a (connect, read) timeout on
  every call: a server that never answers (Prism on a bad body) must not hang a CI job.
* Retries only where they are safe.  Reads (GET) and uploads retry connection errors and
  429/500/502/503/504 with exponential backoff and jitter, within a cap on attempts and on
  total time, honouring ``Retry-After`` and ``retry-after-ms``.  An upload rebuilds its
  multipart stream for every attempt, since a streamed body can be read once.  A *create* is
  never blindly repeated: when its answer may have been lost, the client first lists the
  batches and takes the one made from the same input file, so one call creates at most one
  batch whatever the network does.
* The API key never leaves this module except in the ``Authorization`` header: not in
  ``repr``, logs, exception messages, or the request for a presigned ``download_url``; and it
  is not sent over plain ``http://`` to anything but loopback unless the caller insists.
  Credentials written into the base URL (``https://user:password@host``) are secrets too:
  every URL shown goes through :func:`display_url`.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import orjson
import requests
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor
from urllib3.exceptions import NewConnectionError

from batchkit import __version__
from batchkit.errors import (
    ApiError,
    AuthError,
    BatchkitError,
    InvalidInputError,
    NetworkError,
    UsageError,
)
from batchkit.limits import Profile, get_profile

#: The variable that overrides the profile's base URL.
BASE_URL_ENV = "BATCHKIT_BASE_URL"

__all__ = [
    "BASE_URL_ENV",
    "RETRY_STATUSES",
    "TERMINAL_STATUSES",
    "Batch",
    "BatchError",
    "Client",
    "FileObject",
    "RequestCounts",
    "display_url",
    "parse_retry_after",
    "redact_secret",
    "redact_userinfo",
]

logger = logging.getLogger(__name__)

#: A batch in one of these states will not change any more.
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
#: Answers that mean "try again later" (the official SDKs retry the same set).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

USER_AGENT = f"batchkit/{__version__}"
#: How much of a body that is not a known error shape goes into an error message.
_BODY_SNIPPET = 200
#: Backoff: 0.5 s, 1 s, 2 s, ... capped, each cut by up to a quarter at random (jitter).
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 8.0
#: How far back a lost create is looked for: a just-created batch is on the first page.
_RECOVERY_PAGES = 3
_REDACTED = "[redacted]"
#: A secret this long is redacted wherever it appears; a shorter one only as a whole token.
_UNMISTAKABLE_SECRET = 8
#: The user info of a URL in any text: ``scheme://user:password@``.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")
#: The answers with which a server refuses to cancel a batch, perhaps because it has finished:
#: OpenAI 400 ("already in terminal status"), llama-stack 409.
_CANCEL_REFUSALS = frozenset({400, 409})
#: Upload chunk: big enough to make the encoder's per-read cost vanish, small next to 64 MB.
_UPLOAD_CHUNK = 1024 * 1024


# --- response objects -------------------------------------------------------------------------


def _as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _as_int(value: Any) -> int | None:
    """An int from an int, a float or a numeric string (orq sends ``"bytes": "123"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0

    @classmethod
    def from_json(cls, data: Any) -> RequestCounts:
        data = _as_dict(data)
        return cls(
            total=_as_int(data.get("total")) or 0,
            completed=_as_int(data.get("completed")) or 0,
            failed=_as_int(data.get("failed")) or 0,
        )


@dataclass
class BatchError:
    """One entry of a batch's ``errors.data``: why the server refused (part of) the file."""

    code: str | None
    message: str | None
    param: str | None
    line: int | None

    @classmethod
    def from_json(cls, data: Any) -> BatchError:
        data = _as_dict(data)
        return cls(
            code=_as_str(data.get("code")),
            message=_as_str(data.get("message")),
            param=_as_str(data.get("param")),
            line=_as_int(data.get("line")),
        )


@dataclass
class Batch:
    """A batch as the server described it.  ``raw`` keeps every field, known or not."""

    id: str
    status: str
    endpoint: str | None = None
    input_file_id: str | None = None
    completion_window: str | None = None
    created_at: int | None = None
    request_counts: RequestCounts = field(default_factory=RequestCounts)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[BatchError] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Any) -> Batch:
        """Parse leniently: providers add fields and send nulls; only an ``id`` is required."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ApiError(f"the server's answer is not a batch object: {_snippet(data)}")
        errors = data.get("errors")
        if isinstance(errors, dict):
            errors = errors.get("data")
        metadata = {
            str(key): value if isinstance(value, str) else orjson.dumps(value).decode()
            for key, value in _as_dict(data.get("metadata")).items()
            if value is not None
        }
        return cls(
            id=data["id"],
            status=_as_str(data.get("status")) or "unknown",
            endpoint=_as_str(data.get("endpoint")),
            input_file_id=_as_str(data.get("input_file_id")),
            completion_window=_as_str(data.get("completion_window")),
            created_at=_as_int(data.get("created_at")),
            request_counts=RequestCounts.from_json(data.get("request_counts")),
            output_file_id=_as_str(data.get("output_file_id")),
            error_file_id=_as_str(data.get("error_file_id")),
            errors=[BatchError.from_json(item) for item in errors or [] if isinstance(item, dict)],
            metadata=metadata,
            raw=data,
        )


@dataclass
class FileObject:
    """An uploaded file.  One type for orq's two upload answers and OpenAI's File object."""

    id: str
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    created_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> FileObject:
        """Accept ``{"file": {"file_id", "file_name"...}}``, ``{"_id"...}`` and ``{"id"...}``."""
        outer = _as_dict(data)
        inner = outer["file"] if isinstance(outer.get("file"), dict) else outer
        file_id = next(
            (inner[key] for key in ("id", "file_id", "_id") if isinstance(inner.get(key), str)),
            None,
        )
        if file_id is None:
            raise ApiError(f"the server's upload answer has no file id: {_snippet(data)}")
        return cls(
            id=file_id,
            filename=_as_str(inner.get("filename", inner.get("file_name"))),
            bytes=_as_int(inner.get("bytes")),
            purpose=_as_str(inner.get("purpose")),
            created_at=_as_int(inner.get("created_at")),
            raw=outer,
        )


# --- helpers ----------------------------------------------------------------------------------


def _snippet(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SNIPPET else text[:_BODY_SNIPPET] + "..."


def redact_secret(text: str, secret: str, replacement: str = _REDACTED) -> str:
    """``text`` with ``secret`` replaced.

    A secret of 8 characters or more is replaced wherever it appears (it cannot be there by
    chance); a shorter one only where it stands as a whole token, not inside a longer run of
    letters, digits, ``_`` or ``-``: a key ``x`` must not turn ``batch_x`` into
    ``batch_[redacted]``, while the server's "Invalid API key provided: x" still loses it.
    """
    if not secret:
        return text
    if len(secret) >= _UNMISTAKABLE_SECRET:
        return text.replace(secret, replacement)
    token = re.compile(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", re.ASCII)
    return token.sub(lambda _: replacement, text)


def redact_userinfo(text: str, replacement: str = _REDACTED) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced."""
    return _USERINFO.sub(lambda _: replacement + "@", text)


def display_url(url: str) -> str:
    """A URL as it may be shown: no user info, no query (a presigned URL's is a credential)."""
    parts = urlsplit(url)
    return redact_userinfo(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def _url_credentials(url: str) -> list[str]:
    """What a server may echo of the credentials in ``url``: the password and the Basic token.

    requests sends a URL's user info as ``Authorization: Basic base64(user:password)``, and
    servers that echo the credential they got (as some do the key) must not leak it either.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return []
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    pair = f"{user}:{password}"
    try:
        raw = pair.encode("latin-1")  # what requests encodes a Basic credential with
    except UnicodeEncodeError:
        raw = pair.encode("utf-8")
    return [secret for secret in (password, base64.b64encode(raw).decode()) if secret]


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or ``None`` when it did not say.

    ``retry-after-ms`` (OpenAI's, more precise) wins over ``Retry-After``, which may be a
    number of seconds or an HTTP date.  A date in the past means "now".
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def _problem_message(document: dict[str, Any]) -> str:
    """An RFC 7807 problem's title/detail, plus Prism's ``validation`` list (which field broke
    which rule), since "Invalid request" alone does not tell the user what to fix."""
    message = _as_str(document.get("title")) or _as_str(document.get("detail")) or "error"
    reasons = []
    for item in document.get("validation") or []:
        if isinstance(item, dict):
            location = item.get("location")
            where = ".".join(map(str, location)) if isinstance(location, list) else ""
            reasons.append(f"{where}: {item.get('message')}" if where else str(item.get("message")))
    if reasons:
        return f"{message}: " + "; ".join(reasons)
    detail = _as_str(document.get("detail"))
    return f"{message}: {detail}" if detail and detail != message else message


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _never_reached(exc: BaseException) -> bool:
    """True when the request certainly never reached the server (so repeating it is safe).

    A connect timeout or a refused / unresolvable connection happens before a byte is sent;
    a dropped connection or a read timeout may come after the server acted.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: list[BaseException] = []
    current: Any = exc
    while isinstance(current, BaseException) and current not in seen and len(seen) < 8:
        if isinstance(current, NewConnectionError):
            return True
        seen.append(current)
        current = getattr(current, "reason", None) or (current.args[0] if current.args else None)
    return False


def _describe(exc: requests.RequestException, read_timeout: float) -> str:
    """A short reason for a network failure, without URLs (which may carry a signature)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return f"no answer within {read_timeout:g} s (read timeout)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error (certificate or protocol)"
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text.lower():
        return "the server closed the connection without answering"
    return type(exc).__name__


class _Secret:
    """Holds the API key so that printing the holder (or its ``__dict__``) shows nothing."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__


@dataclass
class _Budget:
    """Attempts and time left for one logical call (a create and its recovery share one)."""

    max_attempts: int
    deadline: float
    attempts: int = 0


class _MaybeDelivered(Exception):
    """A non-repeatable request failed in a way that may have come after the server acted."""

    def __init__(self, error: BatchkitError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _LargeChunks:
    """Feeds a multipart stream to requests in 1 MiB pieces, with a known length.

    Given a file-like body, http.client reads it 8-16 KiB at a time, and the encoder's
    per-read bookkeeping then costs more than the loopback transfer itself (3-4x a plain
    streamed post in tests/benchmarks/bench_upload.py).  An iterable with ``__len__`` makes
    requests send our chunks as they are, with a Content-Length, not chunked encoding.
    """

    def __init__(self, stream: Any, chunk_size: int = _UPLOAD_CHUNK) -> None:
        self._stream = stream
        self._chunk_size = chunk_size

    def __len__(self) -> int:
        return int(self._stream.len)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._stream.read(self._chunk_size):
            yield chunk


RetryMode = Literal["always", "unsent_only"]
BodyFactory = Callable[[], tuple[Any, dict[str, str]]]


def _read_key_file(path: str | os.PathLike[str]) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read the API key file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the API key file {path} is not UTF-8 text") from None
    key = text.strip()
    if not key:
        raise UsageError(f"the API key file {path} is empty")
    return key


# --- the client -------------------------------------------------------------------------------


class Client:
    """Talks to one provider's Files and Batches APIs.

    Build it with :meth:`from_settings` to resolve flags and environment variables the way
    the CLI does, or directly with explicit values.  ``sleep`` is injectable so that tests
    can run retries without waiting.
    """

    def __init__(
        self,
        profile: str | Profile | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        max_retry_time: float = 120.0,
        allow_insecure_http: bool = False,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        key_hint: str | None = None,
    ) -> None:
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        if base_url is not None and not base_url.strip():
            default = self.profile.base_url or "https://..."
            raise UsageError(
                f"the base URL (--base-url) is empty: give a URL, or leave the option out to use "
                f"the profile's ({default})"
            )
        url = base_url or self.profile.base_url
        if not url:
            raise UsageError(
                f"profile {self.profile.name!r} has no default base URL: give one with --base-url"
            )
        self.base_url = url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"the base URL must be an http(s):// URL, got {display_url(url)!r}")
        if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
            raise UsageError(
                f"refusing to send the API key over plain http:// to {parts.hostname}: "
                "use https://, or --allow-insecure-http if you really mean it"
            )
        for name, value in (("connect timeout", connect_timeout), ("read timeout", read_timeout)):
            if not value > 0:
                raise UsageError(f"the {name} must be a positive number of seconds, got {value}")
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be at least 1, got {max_attempts}")
        self._api_key = self._check_key(api_key)
        #: Everything that must never be shown: the key, and any credentials in the URL.
        url_credentials = [_Secret(value) for value in _url_credentials(url)]
        self._secrets = ([self._api_key] if self._api_key else []) + url_credentials
        #: What a 401 tells the user to check.
        self.key_hint = key_hint or f"set {self.profile.api_key_env} or pass --api-key-file"
        if url_credentials:  # requests lets them replace our Authorization header
            self.key_hint += (
                "; note that the user:password in the base URL is sent (as Basic auth) in "
                "place of the key"
            )
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.max_retry_time = max_retry_time
        self._sleep = sleep
        self._random = random.Random()
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # A second, credential-free session for presigned URLs: the key must never go there,
        # and keeping it apart makes that true by construction rather than by a header filter.
        self._plain_session = requests.Session()
        self._plain_session.headers["User-Agent"] = USER_AGENT

    @classmethod
    def from_settings(
        cls,
        *,
        profile: str | Profile | None = None,
        base_url: str | None = None,
        api_key_file: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Client:
        """The one place settings are resolved: flag, then environment variable, then default.

        Profile: ``profile`` > ``BATCHKIT_PROFILE`` > ``orq``.  Base URL: ``base_url`` >
        ``BATCHKIT_BASE_URL`` > the profile's.  Key: ``api_key_file`` > the profile's variable
        (``ORQ_API_KEY``...).  A missing key is reported when a request needs it, so that
        commands that send nothing work without one.  An empty variable counts as unset, as is
        usual; an empty ``base_url`` given explicitly is a mistake (a UsageError).
        """
        resolved = profile if isinstance(profile, Profile) else get_profile(profile)
        url = (
            base_url if base_url is not None else (os.environ.get(BASE_URL_ENV, "").strip() or None)
        )
        if api_key_file is not None:
            key: str | None = _read_key_file(api_key_file)
            hint = f"check the key in the file given with --api-key-file ({api_key_file})"
        else:
            key = os.environ.get(resolved.api_key_env, "").strip() or None
            hint = f"check {resolved.api_key_env} (or pass --api-key-file)"
        kwargs.setdefault("key_hint", hint)
        return cls(resolved, base_url=url, api_key=key, **kwargs)

    @staticmethod
    def _check_key(api_key: str | None) -> _Secret | None:
        if api_key is None or not api_key.strip():
            return None
        key = api_key.strip()
        # requests would put an invalid header value, i.e. the key, into its exception message.
        if not all(33 <= ord(char) <= 126 for char in key):
            raise UsageError("the API key contains spaces, control or non-ASCII characters")
        return _Secret(key)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "missing"
        shown = display_url(self.base_url)
        return f"Client(profile={self.profile.name!r}, base_url={shown!r}, api_key={key})"

    def close(self) -> None:
        if self._owns_session:
            self.session.close()
        self._plain_session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the API ---------------------------------------------------------------------------

    def upload_file(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str = "batch",
        progress: Callable[[int, int], None] | None = None,
    ) -> FileObject:
        """Upload a file streamed from disk: memory does not grow with its size.

        The server refuses names that do not end in ``.jsonl``: by default the file's own name
        is used, with its suffix replaced by ``.jsonl`` if needed.  ``progress(sent, total)``
        counts multipart bytes; after a retry it starts again from 0.
        """
        source = Path(path)
        name = filename if filename is not None else source.name
        if filename is None and not name.endswith(".jsonl"):
            name = source.stem + ".jsonl"
        if not name.endswith(".jsonl") or name == ".jsonl":
            raise InvalidInputError(f"upload file name {name!r} must end in .jsonl")
        try:
            handle = source.open("rb")
        except OSError as error:
            raise InvalidInputError(f"cannot read {source}: {error.strerror}") from None

        # One boundary for every attempt, so that a retry sends the very same bytes: servers
        # (and llmock's verdict) recognise a retry by its body.
        boundary = uuid.uuid4().hex

        def build() -> tuple[Any, dict[str, str]]:
            # A new encoder per attempt: a streamed body can be read only once.
            handle.seek(0)
            encoder = MultipartEncoder(
                fields=[("purpose", purpose), ("file", (name, handle, "application/jsonl"))],
                boundary=boundary,
            )
            monitor = MultipartEncoderMonitor(encoder)
            if progress is not None:
                monitor.callback = lambda m: progress(m.bytes_read, m.len)
            return _LargeChunks(monitor), {"Content-Type": monitor.content_type}

        with handle:
            response = self._send("POST", self._url(self.profile.files_path), body=build)
        return FileObject.from_json(self._json(response))

    def create_batch(
        self,
        input_file_id: str,
        endpoint: str,
        *,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
    ) -> Batch:
        """Create a batch; at most one, whatever the network does.

        A create that may have reached the server (a dropped connection, a read timeout, a
        5xx) is not repeated until a listing shows that no batch uses ``input_file_id``.  A 429
        or a failed connect means the server did nothing, so those are simply retried.
        """
        document: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
        }
        if metadata:
            document["metadata"] = dict(metadata)
        payload = orjson.dumps(document)
        url = self._url(self.profile.batches_path)
        budget = self._new_budget()

        def body() -> tuple[Any, dict[str, str]]:
            return payload, {"Content-Type": "application/json"}

        while True:
            try:
                response = self._send("POST", url, body=body, retry="unsent_only", budget=budget)
            except _MaybeDelivered as lost:
                existing = self._recover_create(input_file_id, lost.error)
                if existing is not None:
                    return existing
                delay = lost.retry_after
                if delay is None:
                    delay = self._backoff(budget.attempts)
                self._pause_or_give_up(budget, delay, lost.error)
                logger.info("no batch was created for %s: sending the create again", input_file_id)
                continue
            return self._batch(response)

    def list_batches(self, *, limit: int = 20, after: str | None = None) -> list[Batch]:
        """One page of batches, newest first (as the providers return them)."""
        return self._list_page(limit=limit, after=after)[0]

    def iter_batches(
        self, *, page_size: int = 100, max_pages: int | None = None
    ) -> Iterator[Batch]:
        """Every batch, page by page; ``max_pages`` bounds the requests made."""
        after: str | None = None
        pages = 0
        while max_pages is None or pages < max_pages:
            batches, has_more = self._list_page(limit=page_size, after=after)
            pages += 1
            yield from batches
            if not batches or not has_more:
                return
            after = batches[-1].id

    def retrieve_batch(self, batch_id: str) -> Batch:
        response = self._send("GET", self._url(self.profile.batches_path, batch_id))
        return self._batch(response)

    def cancel_batch(self, batch_id: str) -> Batch:
        """Ask the server to cancel; return the batch as it then is.  Retried freely, since
        cancelling twice is harmless.

        Cancelling a batch that has already finished is not an error, on every server: orq
        answers the batch as it is, but OpenAI refuses with a 400 ("already in terminal
        status") and llama-stack with a 409.  On such a refusal the batch is retrieved, and if it
        has finished it is returned as it is (``status`` then says how it ended: ``completed``,
        ``failed``, ``expired`` or ``cancelled``); if it has not, the refusal is raised.
        """
        try:
            response = self._send("POST", self._url(self.profile.batches_path, batch_id, "cancel"))
        except ApiError as refusal:
            if refusal.status not in _CANCEL_REFUSALS:
                raise
            batch = self.retrieve_batch(batch_id)
            if not batch.is_terminal:
                raise
            logger.info(
                "batch %s had already ended (%s): nothing to cancel", batch_id, batch.status
            )
            return batch
        return self._batch(response)

    def file_content(self, file_id: str) -> bytes:
        """A file's bytes: OpenAI sends them; orq sends ``{"download_url"}`` to fetch them from.

        The download URL is presigned: it is fetched with a separate session that has no
        Authorization header, both because the key must not go to a storage host and because
        such hosts refuse requests that carry two kinds of credentials.
        """
        response = self._send("GET", self._url(self.profile.files_path, file_id, "content"))
        download_url = self._download_url(response)
        if download_url is None:
            return response.content
        target = urljoin(self.base_url + "/", download_url)
        return self._send("GET", target, session=self._plain_session, auth=False).content

    # --- plumbing --------------------------------------------------------------------------

    def _url(self, path: str, *segments: str) -> str:
        tail = "".join("/" + quote(segment, safe="") for segment in segments)
        return self.base_url + path + tail

    def _new_budget(self) -> _Budget:
        return _Budget(self.max_attempts, time.monotonic() + self.max_retry_time)

    def _backoff(self, attempt: int) -> float:
        delay = min(_BACKOFF_MAX, _BACKOFF_BASE * 2.0 ** max(0, attempt - 1))
        return delay * (1 - 0.25 * self._random.random())

    def _auth_headers(self) -> dict[str, str]:
        if self._api_key is None:
            raise UsageError(f"no API key: {self.key_hint}")
        return {"Authorization": f"Bearer {self._api_key.reveal()}"}

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: BodyFactory | None = None,
        params: dict[str, str] | None = None,
        retry: RetryMode = "always",
        budget: _Budget | None = None,
        session: requests.Session | None = None,
        auth: bool = True,
    ) -> requests.Response:
        """Send with retries and return a 2xx answer, or raise the typed error.

        With ``retry="unsent_only"`` only failures that prove the server did nothing are
        retried here; the others raise :class:`_MaybeDelivered` for the caller to resolve.
        """
        budget = budget or self._new_budget()
        session = session or self.session
        headers = self._auth_headers() if auth else {}
        while True:
            budget.attempts += 1
            data, extra_headers = body() if body is not None else (None, {})
            request_headers = {**headers, **extra_headers}
            self._log_request(method, url, request_headers, budget.attempts)
            started = time.monotonic()
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=request_headers,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                error = self._network_error(method, url, exc)
                logger.debug("%s %s failed: %s", method, display_url(url), error)
                retryable = isinstance(
                    exc,
                    (
                        requests.ConnectionError,
                        requests.Timeout,
                        requests.exceptions.ChunkedEncodingError,
                    ),
                ) and not isinstance(exc, requests.exceptions.SSLError)
                if not retryable:
                    raise error from None
                if retry == "unsent_only" and not _never_reached(exc):
                    raise _MaybeDelivered(error, None) from None
                self._pause_or_give_up(budget, self._backoff(budget.attempts), error)
                continue
            logger.debug(
                "%s %s -> %d in %.2f s",
                method,
                display_url(url),
                response.status_code,
                time.monotonic() - started,
            )
            if response.ok:
                return response
            api_error = self._api_error(method, url, response)
            if response.status_code not in RETRY_STATUSES:
                raise api_error
            wait = parse_retry_after(response.headers)
            if retry == "unsent_only" and response.status_code != 429:
                raise _MaybeDelivered(api_error, wait)
            self._pause_or_give_up(
                budget, wait if wait is not None else self._backoff(budget.attempts), api_error
            )

    def _pause_or_give_up(self, budget: _Budget, delay: float, error: BatchkitError) -> None:
        """Sleep before the next attempt, or raise ``error`` when attempts or time ran out."""
        out_of_attempts = budget.attempts >= budget.max_attempts
        out_of_time = time.monotonic() + delay > budget.deadline
        if out_of_attempts and budget.max_attempts == 1:
            raise error
        if out_of_attempts or out_of_time:
            why = (
                f"gave up after {budget.attempts} attempts"
                if out_of_attempts
                else f"gave up: the next attempt would be in {delay:.1f} s, past the time limit"
            )
            raise _with_suffix(error, why) from None
        logger.info("%s; retrying in %.2f s (attempt %d)", error, delay, budget.attempts + 1)
        self._sleep(delay)

    def _recover_create(self, input_file_id: str, error: BatchkitError) -> Batch | None:
        """After a possibly-lost create: the batch made from ``input_file_id``, if any."""
        logger.info("the create may have reached the server (%s): looking for its batch", error)
        try:
            for batch in self.iter_batches(max_pages=_RECOVERY_PAGES):
                if batch.input_file_id == input_file_id:
                    logger.info("found batch %s: the create had succeeded", batch.id)
                    return batch
        except BatchkitError as lookup_error:
            raise NetworkError(
                f"creating the batch may have succeeded ({error}), but the batches could not be "
                f"listed to check ({lookup_error}): look for a batch with input_file_id "
                f"{input_file_id} before submitting again"
            ) from None
        return None

    def _list_page(self, *, limit: int, after: str | None) -> tuple[list[Batch], bool]:
        params = {"limit": str(limit)}
        if after:
            params["after"] = after
        response = self._send("GET", self._url(self.profile.batches_path), params=params)
        document = self._json(response)
        items = document.get("data") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise ApiError(f"the server's batch list has no data: {_snippet(document)}")
        batches = [Batch.from_json(item) for item in items]
        has_more = document.get("has_more") if isinstance(document, dict) else None
        if not isinstance(has_more, bool):
            has_more = len(batches) >= limit
        return batches, has_more

    def _batch(self, response: requests.Response) -> Batch:
        return Batch.from_json(self._json(response))

    def _json(self, response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ApiError(
                f"the server answered {response.status_code} with a body that is not JSON: "
                f"{self._redact(_snippet(response.text))}",
                status=response.status_code,
            ) from None

    @staticmethod
    def _download_url(response: requests.Response) -> str | None:
        if "json" not in response.headers.get("Content-Type", ""):
            return None
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None
        if isinstance(document, dict) and isinstance(document.get("download_url"), str):
            return str(document["download_url"])
        return None

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = redact_secret(text, secret.reveal())
        return text

    def _api_error(self, method: str, url: str, response: requests.Response) -> ApiError:
        """The server's error body, in whichever of the known shapes it came, as an ApiError."""
        status = response.status_code
        code = param = None
        message: str | None = None
        try:
            document: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            inner = document["error"]  # router / OpenAI style
            message = _as_str(inner.get("message"))
            code = _as_str(inner.get("code")) or _as_str(inner.get("type"))
            param = _as_str(inner.get("param"))
        elif isinstance(document, dict) and isinstance(document.get("message"), str):
            message = document["message"]  # orq file endpoints
            code = _as_str(document.get("code"))
            if document.get("details"):
                message += f" ({_snippet(document['details'])})"
        elif isinstance(document, dict) and isinstance(document.get("error"), str):
            message = document["error"]
        elif isinstance(document, dict) and ("detail" in document or "title" in document):
            message = _problem_message(document)  # RFC 7807 problem details (Prism, gateways)
        if message is None:
            message = _snippet(response.text) if response.text.strip() else response.reason
        where = f"{method} {urlsplit(url).path}"
        text = f"{where}: HTTP {status}"
        if code:
            text += f" {code}"
        text += f": {message}"
        if param:
            text += f" (param: {param})"
        text = self._redact(text)
        if status in (401, 403):
            return AuthError(f"{text}; {self.key_hint}", status=status, code=code, param=param)
        return ApiError(text, status=status, code=code, param=param)

    def _network_error(self, method: str, url: str, exc: requests.RequestException) -> NetworkError:
        return NetworkError(f"{method} {display_url(url)}: {_describe(exc, self.timeout[1])}")

    def _log_request(self, method: str, url: str, headers: Mapping[str, str], attempt: int) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        shown = {
            key: "Bearer " + _REDACTED if key.lower() == "authorization" else value
            for key, value in headers.items()
        }
        logger.debug("%s %s attempt %d headers=%s", method, display_url(url), attempt, shown)


def _with_suffix(error: BatchkitError, suffix: str) -> BatchkitError:
    """The same error with ``suffix`` added to its message (for "gave up after N attempts")."""
    message = f"{error} ({suffix})"
    if isinstance(error, ApiError):
        return type(error)(message, status=error.status, code=error.code, param=error.param)
    return type(error)(message)
