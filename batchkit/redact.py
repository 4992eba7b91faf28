"""Keeping secrets out of everything shown: the API key, and credentials written into a URL.

The key must never appear in output, logs, errors or reprs (DESIGN.md "Never lose or leak").
The transport holds it in a :class:`Secret`, runs every message it builds through
:func:`redact_secret`, and shows every URL through :func:`display_url`, since a base URL may
carry ``user:password@`` and a presigned download URL carries its signature in the query.
The CLI's ``-v`` log passes through a :class:`RedactingFilter` too: the second lock on the door.
A presigned URL's signature (:func:`redact_signatures`) is a credential as well, for an hour.
"""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Secret",
    "display_url",
    "redact_secret",
    "redact_signatures",
    "redact_userinfo",
    "url_credentials",
]

#: What a secret is replaced with.
REDACTED = "[redacted]"
#: A secret this long is redacted wherever it appears; a shorter one only as a whole token.
_UNMISTAKABLE_SECRET = 8
#: The user info of a URL in any text: ``scheme://user:password@``.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")
#: The query values that make a URL a credential: a presigned URL's signature (S3's
#: ``X-Amz-Signature``, Google's ``X-Goog-Signature``, CloudFront's ``Signature``), an Azure
#: SAS token's ``sig`` and a temporary session token.  A server that echoes the URL it was
#: asked for (in an error body, say) would otherwise hand them to the log.
_SIGNED_QUERY = re.compile(
    r"(?i)([?&;](?:x-amz-signature|x-amz-security-token|x-goog-signature|signature|sig)=)"
    r"[^&;#\s'\"<>]+"
)
#: Bearer tokens and Authorization values, in a log record's text.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    # Azure sends the key alone in its own header.
    re.compile(r"(?i)(api-key['\"]?\s*[:=]\s*['\"]?)(?!\[redacted\])[^\s'\",}]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
)


class Secret:
    """Holds the API key so that printing the holder (or its ``__dict__``) shows nothing."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__


def redact_secret(text: str, secret: str, replacement: str = REDACTED) -> str:
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


def redact_userinfo(text: str, replacement: str = REDACTED) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced."""
    return _USERINFO.sub(lambda _: replacement + "@", text)


def redact_signatures(text: str, replacement: str = REDACTED) -> str:
    """``text`` with the signature of every presigned URL in it replaced (the rest kept)."""
    return _SIGNED_QUERY.sub(lambda m: m.group(1) + replacement, text)


def display_url(url: str) -> str:
    """A URL as it may be shown: no user info, no query (a presigned URL's is a credential)."""
    parts = urlsplit(url)
    return redact_userinfo(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def url_credentials(url: str) -> list[str]:
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


class RedactingFilter(logging.Filter):
    """Replaces bearer tokens, URL credentials, presigned URLs' signatures and any registered
    secret with ``***``, in a record's message and in the traceback it carries.

    A registered secret shorter than 8 characters is replaced only as a whole token (see
    :func:`redact_secret`), so that a short key does not mangle paths and ids.

    The client never logs its key; this is the second lock on the door, against mistakes: a
    message built from a server's echo, an exception logged with its traceback.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = redact_secret(text, secret, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)}***", text)
        return redact_signatures(redact_userinfo(text, "***"), "***")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # The handler's formatter would write the traceback as it is; it uses a record's
            # ``exc_text`` when one is set, so the redacted text is set here.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
