"""Keeping secrets out of everything shown: the API key, and credentials written into a URL.

The key must never appear in output, logs, errors or reprs (DESIGN.md "Never lose or leak").
The transport holds it in a :class:`Secret`, runs every message it builds through
:func:`redact_secret`, and shows every URL through :func:`display_url`, since a base URL may
carry ``user:password@`` and a presigned download URL carries its signature in the query.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "Secret",
    "display_url",
    "redact_secret",
    "redact_userinfo",
    "url_credentials",
]

#: What a secret is replaced with.
REDACTED = "[redacted]"
#: A secret this long is redacted wherever it appears; a shorter one only as a whole token.
_UNMISTAKABLE_SECRET = 8
#: The user info of a URL in any text: ``scheme://user:password@``.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")


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
