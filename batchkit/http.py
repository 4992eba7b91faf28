"""The transport under :class:`batchkit.client.Client`: one session, timeouts and retries.

Why it is built the way it is (DESIGN.md "Never lose or leak", CONTRACT.md section 4):

* One :class:`requests.Session`, so connections are reused, and a (connect, read) timeout on
  every call: a server that never answers (Prism on a bad body) must not hang a CI job.
* Retries only where they are safe.  Reads (GET) and uploads retry connection errors and
  429/500/502/503/504 with exponential backoff and jitter, within a cap on attempts and on
  total time, honouring ``Retry-After`` and ``retry-after-ms``.  A request whose body is
  streamed gets a new body for every attempt (see :data:`BodyFactory`); a request that must
  not be repeated blindly asks for ``retry="unsent_only"`` and resolves the doubt itself.
* The API key never leaves this module except in its header (``Authorization: Bearer``, or
  Azure's ``api-key``): not in
  ``repr``, logs, exception messages, or the request for a presigned ``download_url``; and it
  is not sent over plain ``http://`` to anything but loopback unless the caller insists.
  Credentials written into the base URL (``https://user:password@host``) are secrets too:
  every URL shown goes through :func:`~batchkit.redact.display_url`.

What a failure means (its message, whether another attempt is safe) is read by
:mod:`batchkit.failures`; how a body streams, by :mod:`batchkit.streams`; how secrets are
kept out of text, by :mod:`batchkit.redact`.  Their names that were first defined here are
still importable from here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import orjson
import requests

from batchkit import __version__
from batchkit.errors import ApiError, BatchkitError, UsageError
from batchkit.failures import (
    RETRY_STATUSES,
    api_error,
    is_transient,
    network_error,
    never_reached,
    parse_retry_after,
    with_suffix,
)
from batchkit.json_values import as_str, snippet
from batchkit.limits import AuthScheme
from batchkit.redact import (
    REDACTED,
    Secret,
    display_url,
    redact_secret,
    redact_signatures,
    redact_userinfo,
    url_credentials,
)
from batchkit.streams import (
    DOWNLOAD_CHUNK,
    BodyFactory,
    LargeChunks,
    SinkFactory,
    peek_pointer,
    save_body,
)

#: RETRY_STATUSES, BodyFactory, LargeChunks, SinkFactory, as_str, display_url, parse_retry_after,
#: redact_secret, redact_userinfo and snippet live in the modules named above; they were
#: first defined here and stay importable from here.
__all__ = [
    "RETRY_STATUSES",
    "USER_AGENT",
    "AuthScheme",
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

USER_AGENT = f"batchkit/{__version__}"
#: What to check when a request sent without the key (a presigned download) is refused.
_UNSIGNED_HINT = (
    "the download link was refused (it may have expired): run the command again for a fresh one"
)
#: Backoff: 0.5 s, 1 s, 2 s, ... capped, each cut by up to a quarter at random (jitter).
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 8.0

_Self = TypeVar("_Self", bound="HttpClient")

#: The headers that carry the key, lower-cased: never logged as they are.
_KEY_HEADERS = frozenset({"authorization", "api-key"})


def _redacted_header(name: str, value: str) -> str:
    """A key header's value as the ``-v`` log shows it: its scheme, never the key."""
    scheme, _, _ = value.partition(" ")
    return f"{scheme} {REDACTED}" if name.lower() == "authorization" else REDACTED


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


RetryMode = Literal["always", "unsent_only"]


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
        auth: AuthScheme = "bearer",
        key_required: bool = True,
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
        self._auth: AuthScheme = auth
        self._key_required = key_required
        #: Everything that must never be shown: the key, and any credentials in the URL.
        in_url = [Secret(value) for value in url_credentials(url)]
        self._secrets = ([self._api_key] if self._api_key else []) + in_url
        #: What a 401 tells the user to check.
        self.key_hint = key_hint
        if in_url:  # requests lets them replace our Authorization header
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
    def _check_key(api_key: str | None) -> Secret | None:
        if api_key is None or not api_key.strip():
            return None
        key = api_key.strip()
        # requests would put an invalid header value, i.e. the key, into its exception message.
        if not all(33 <= ord(char) <= 126 for char in key):
            raise UsageError("the API key contains spaces, control or non-ASCII characters")
        return Secret(key)

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

    def require_key(self) -> None:
        """Raise the "no API key" UsageError now, for a caller that would otherwise do local
        work (a job's build) before its first request finds the key missing.  A server that
        needs no key (``key_required`` false: llama-stack run locally) never raises."""
        if self._api_key is None and self._key_required:
            raise UsageError(f"no API key: {self.key_hint}")

    def _auth_headers(self) -> dict[str, str]:
        """The key's header: Azure wants ``api-key`` (and must never get ``Authorization``,
        which it reads as an Entra ID token); everyone else ``Authorization: Bearer``."""
        self.require_key()
        if self._api_key is None:
            return {}
        if self._auth == "api-key":
            return {"api-key": self._api_key.reveal()}
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
                error = network_error(method, url, exc, self.timeout[1])
                logger.debug("%s %s failed: %s", method, display_url(url), error)
                if not is_transient(exc):
                    raise error from None
                if retry == "unsent_only" and not never_reached(exc):
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
            hint = self.key_hint if auth else _UNSIGNED_HINT
            refusal = api_error(method, url, response, redact=self._redact, key_hint=hint)
            if response.status_code not in RETRY_STATUSES:
                raise refusal
            wait = parse_retry_after(response.headers)
            if retry == "unsent_only" and response.status_code != 429:
                raise MaybeDelivered(refusal, wait)
            self._pause_or_give_up(
                budget, wait if wait is not None else self._backoff(budget.attempts), refusal
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
            raise with_suffix(error, why) from None
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
                    chunks = response.iter_content(DOWNLOAD_CHUNK)
                    head, link = peek_pointer(response, chunks) if authorized else (b"", None)
                    if link is not None:
                        hop = (urljoin(self.base_url + "/", link), None, False)
                        continue
                    return save_body(response, head, chunks, open_sink, progress)
                except requests.RequestException as exc:
                    error = network_error("GET", source, exc, self.timeout[1])
                    if not is_transient(exc):
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
        """``text`` without the key, URL credentials, or a presigned URL's signature (a
        storage server may echo the URL it refused)."""
        for secret in self._secrets:
            text = redact_secret(text, secret.reveal())
        return redact_signatures(text)

    def _log_request(self, method: str, url: str, headers: Mapping[str, str], attempt: int) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        shown = {
            key: _redacted_header(key, value) if key.lower() in _KEY_HEADERS else value
            for key, value in headers.items()
        }
        logger.debug("%s %s attempt %d headers=%s", method, display_url(url), attempt, shown)
