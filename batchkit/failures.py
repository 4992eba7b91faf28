"""What a failed request means: the error to raise, and whether trying again is safe.

The transport (:mod:`batchkit.http`) decides when to retry; this module reads each failure for
it.  A server's error body comes in several shapes (OpenAI's ``{"error": {...}}``, orq's
``{"message"}``, RFC 7807 problems from Prism and gateways) and becomes one typed
:class:`~batchkit.errors.ApiError` that says what the server said.  A network failure becomes
a short reason without URLs (which may carry a signature), and is sorted by whether another
attempt may succeed and whether the request may already have reached the server, since a
create that may have been delivered must not be repeated blindly (CONTRACT.md section 4).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from urllib3.exceptions import NewConnectionError

from batchkit.errors import ApiError, AuthError, BatchkitError, NetworkError
from batchkit.json_values import as_str, snippet
from batchkit.redact import display_url

__all__ = [
    "RETRY_STATUSES",
    "api_error",
    "is_transient",
    "network_error",
    "never_reached",
    "parse_retry_after",
    "with_suffix",
]

#: Answers that mean "try again later" (the official SDKs retry the same set).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


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


def api_error(
    method: str,
    url: str,
    response: requests.Response,
    *,
    redact: Callable[[str], str],
    key_hint: str,
) -> ApiError:
    """The server's error body, in whichever of the known shapes it came, as an ApiError.

    ``redact`` removes the secrets the server may have echoed; a 401 or 403 (an AuthError)
    ends with ``key_hint``, which says what to check.
    """
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
    text = redact(text)
    if status in (401, 403):
        return AuthError(f"{text}; {key_hint}", status=status, code=code, param=param)
    return ApiError(text, status=status, code=code, param=param)


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


def network_error(
    method: str, url: str, exc: requests.RequestException, read_timeout: float
) -> NetworkError:
    """A network failure as the error to raise: the request, and why, in a few words."""
    return NetworkError(f"{method} {display_url(url)}: {_describe(exc, read_timeout)}")


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


def is_transient(exc: requests.RequestException) -> bool:
    """A network failure that another attempt may not meet (a TLS error would be met again)."""
    transient = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )
    return isinstance(exc, transient) and not isinstance(exc, requests.exceptions.SSLError)


def never_reached(exc: BaseException) -> bool:
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


def with_suffix(error: BatchkitError, suffix: str) -> BatchkitError:
    """The same error with ``suffix`` added to its message (for "gave up after N attempts")."""
    message = f"{error} ({suffix})"
    if isinstance(error, ApiError):
        return type(error)(message, status=error.status, code=error.code, param=error.param)
    return type(error)(message)
