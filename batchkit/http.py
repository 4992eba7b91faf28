"""The HTTP mechanics under :class:`batchkit.client.Client`: one session, timeouts, retries,
typed errors, and keeping secrets out of everything shown.

Why it is built the way it is (DESIGN.md "Never lose or leak", CONTRACT.md section 4):

* One :class:`requests.Session`, so connections are reused, and a (connect, read) timeout on
  every call: a server that never answers (Prism on a bad body) must not hang a CI job.
* Retries only where they are safe.  Reads (GET) and uploads retry connection errors and
  429/500/502/503/504 with exponential backoff and jitter, within a cap on attempts and on
  total time, honouring ``Retry-After`` and ``retry-after-ms``.  A request whose body is
  streamed gets a new body for every attempt (see :data:`BodyFactory`); a request that must
  not be repeated blindly asks for ``retry="unsent_only"`` and resolves the doubt itself.
* The API key never leaves this module except in the ``Authorization`` header: not in
  ``repr``, logs, exception messages, or the request for a presigned ``download_url``; and it
  is not sent over plain ``http://`` to anything but loopback unless the caller insists.
  Credentials written into the base URL (``https://user:password@host``) are secrets too:
  every URL shown goes through :func:`display_url`.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import ipaddress
import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import orjson
import requests
from urllib3.exceptions import NewConnectionError

from batchkit import __version__
from batchkit.errors import (
    ApiError,
    AuthError,
    BatchkitError,
    NetworkError,
    UsageError,
)

__all__ = [
    "RETRY_STATUSES",
    "USER_AGENT",
    "BodyFactory",
    "Budget",
    "HttpClient",
    "LargeChunks",
    "MaybeDelivered",
    "RetryMode",
    "SinkFactory",
    "as_str",
    "display_url",
    "parse_retry_after",
    "redact_secret",
    "redact_userinfo",
    "snippet",
]

logger = logging.getLogger(__name__)

#: Answers that mean "try again later" (the official SDKs retry the same set).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

USER_AGENT = f"batchkit/{__version__}"
#: How much of a body that is not a known error shape goes into an error message.
_BODY_SNIPPET = 200
#: Backoff: 0.5 s, 1 s, 2 s, ... capped, each cut by up to a quarter at random (jitter).
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 8.0
_REDACTED = "[redacted]"
#: A secret this long is redacted wherever it appears; a shorter one only as a whole token.
_UNMISTAKABLE_SECRET = 8
#: The user info of a URL in any text: ``scheme://user:password@``.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")
#: Upload chunk: big enough to make the encoder's per-read cost vanish, small next to 64 MB.
_UPLOAD_CHUNK = 1024 * 1024
#: Download chunk: the most a download holds in memory at once.
_DOWNLOAD_CHUNK = 1024 * 1024
#: A JSON content answer longer than this is a file, not a ``{"download_url"}`` pointer.
_POINTER_MAX = 64 * 1024

_Self = TypeVar("_Self", bound="HttpClient")


# --- helpers ----------------------------------------------------------------------------------


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def snippet(value: Any) -> str:
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
    message = as_str(document.get("title")) or as_str(document.get("detail")) or "error"
    reasons = []
    for item in document.get("validation") or []:
        if isinstance(item, dict):
            location = item.get("location")
            where = ".".join(map(str, location)) if isinstance(location, list) else ""
            reasons.append(f"{where}: {item.get('message')}" if where else str(item.get("message")))
    if reasons:
        return f"{message}: " + "; ".join(reasons)
    detail = as_str(document.get("detail"))
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
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off before the whole answer had arrived"
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
class Budget:
    """Attempts and time left for one logical call (a create and its recovery share one)."""

    max_attempts: int
    deadline: float
    attempts: int = 0


class MaybeDelivered(Exception):
    """A non-repeatable request failed in a way that may have come after the server acted."""

    def __init__(self, error: BatchkitError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class LargeChunks:
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
#: Opens where one attempt of a download writes: called again for every attempt.
SinkFactory = Callable[[], AbstractContextManager[BinaryIO]]


def _is_transient(exc: requests.RequestException) -> bool:
    """A network failure that another attempt may not meet (a TLS error would be met again)."""
    transient = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )
    return isinstance(exc, transient) and not isinstance(exc, requests.exceptions.SSLError)


def _peek_pointer(response: requests.Response, chunks: Iterator[bytes]) -> tuple[bytes, str | None]:
    """The first bytes of a file's content answer, and its ``download_url`` if it is one.

    orq answers a small JSON document pointing at the file; OpenAI answers the file.  Only a
    JSON answer that ends within :data:`_POINTER_MAX` bytes is read whole and looked into;
    whatever was read is returned, to be written before the rest.
    """
    if "json" not in response.headers.get("Content-Type", "").lower():
        return b"", None
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) > _POINTER_MAX:
            return head, None
    try:
        document = orjson.loads(head)
    except orjson.JSONDecodeError:
        return head, None
    link = document.get("download_url") if isinstance(document, dict) else None
    return head, link if isinstance(link, str) and link else None


def _save(
    response: requests.Response,
    head: bytes,
    chunks: Iterator[bytes],
    open_sink: SinkFactory,
    progress: Callable[[int, int | None], None] | None,
) -> int:
    """Write ``head`` and the rest of the body to a fresh sink; report ``(written, total)``."""
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    total = int(length) if length.isdigit() and not encoded else None
    written = 0
    # A network error while copying (requests' are OSErrors without an errno) passes through
    # the sink as it is: the sink removes what was written and leaves the retry to the caller.
    with open_sink() as sink:
        for chunk in itertools.chain((head,), chunks):
            sink.write(chunk)
            written += len(chunk)
            if progress is not None and chunk:
                progress(written, total)
    return written


# --- the transport ----------------------------------------------------------------------------


class HttpClient:
    """One API host: its base URL, key, session, timeouts and retry budget.

    It knows nothing of files or batches: :class:`batchkit.client.Client` adds the API's
    operations on top.  ``sleep`` is injectable so that tests can run retries without waiting.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        max_retry_time: float = 120.0,
        allow_insecure_http: bool = False,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        key_hint: str = "check the API key",
    ) -> None:
        url = base_url
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
        self.key_hint = key_hint
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
        return f"{type(self).__name__}(base_url={display_url(self.base_url)!r}, api_key={key})"

    def close(self) -> None:
        if self._owns_session:
            self.session.close()
        self._plain_session.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------

    def _url(self, path: str, *segments: str) -> str:
        tail = "".join("/" + quote(segment, safe="") for segment in segments)
        return self.base_url + path + tail

    def _new_budget(self) -> Budget:
        return Budget(self.max_attempts, time.monotonic() + self.max_retry_time)

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
        budget: Budget | None = None,
        session: requests.Session | None = None,
        auth: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """Send with retries and return a 2xx answer, or raise the typed error.

        With ``retry="unsent_only"`` only failures that prove the server did nothing are
        retried here; the others raise :class:`MaybeDelivered` for the caller to resolve.
        With ``stream`` the answer's body is left unread, for the caller to read and close.
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
                    stream=stream,
                )
            except requests.RequestException as exc:
                error = self._network_error(method, url, exc)
                logger.debug("%s %s failed: %s", method, display_url(url), error)
                if not _is_transient(exc):
                    raise error from None
                if retry == "unsent_only" and not _never_reached(exc):
                    raise MaybeDelivered(error, None) from None
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
                raise MaybeDelivered(api_error, wait)
            self._pause_or_give_up(
                budget, wait if wait is not None else self._backoff(budget.attempts), api_error
            )

    def _pause_or_give_up(self, budget: Budget, delay: float, error: BatchkitError) -> None:
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

    def _download(
        self,
        url: str,
        open_sink: SinkFactory,
        *,
        params: dict[str, str] | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """GET ``url``'s body into a sink, streamed; return the bytes written.

        A GET is safe to repeat, so a body cut off midway is fetched again from the start,
        into a new sink (``open_sink`` is called per attempt: for a file, a new temporary
        file), within the same budget as the other failures.  An answer that is orq's
        ``{"download_url": ...}`` pointer is followed, without the Authorization header (see
        :meth:`_follow`); a retry then starts from the presigned URL, which stays valid for
        an hour.  Memory holds one chunk, whatever the size of the file.
        """
        budget = self._new_budget()
        hop: tuple[str, dict[str, str] | None, bool] = (url, params, True)
        while True:
            source, query, authorized = hop
            response = self._send(
                "GET",
                source,
                params=query,
                budget=budget,
                session=self.session if authorized else self._plain_session,
                auth=authorized,
                stream=True,
            )
            with contextlib.closing(response):
                try:
                    chunks = response.iter_content(_DOWNLOAD_CHUNK)
                    head, link = _peek_pointer(response, chunks) if authorized else (b"", None)
                    if link is not None:
                        hop = (urljoin(self.base_url + "/", link), None, False)
                        continue
                    return _save(response, head, chunks, open_sink, progress)
                except requests.RequestException as exc:
                    error = self._network_error("GET", source, exc)
                    if not _is_transient(exc):
                        raise error from None
                    logger.debug("GET %s broke off: %s", display_url(source), error)
            self._pause_or_give_up(budget, self._backoff(budget.attempts), error)

    def _json(self, response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ApiError(
                f"the server answered {response.status_code} with a body that is not JSON: "
                f"{self._redact(snippet(response.text))}",
                status=response.status_code,
            ) from None

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
            message = as_str(inner.get("message"))
            code = as_str(inner.get("code")) or as_str(inner.get("type"))
            param = as_str(inner.get("param"))
        elif isinstance(document, dict) and isinstance(document.get("message"), str):
            message = document["message"]  # orq file endpoints
            code = as_str(document.get("code"))
            if document.get("details"):
                message += f" ({snippet(document['details'])})"
        elif isinstance(document, dict) and isinstance(document.get("error"), str):
            message = document["error"]
        elif isinstance(document, dict) and ("detail" in document or "title" in document):
            message = _problem_message(document)  # RFC 7807 problem details (Prism, gateways)
        if message is None:
            message = snippet(response.text) if response.text.strip() else response.reason
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
