"""What every API command shares: its options, its client, and ``-v``'s redacted log.

``status``, ``submit``, ``download``, ``results``... take the same ``--profile``, ``--base-url``,
``--api-key-file``, timeouts and ``-v`` (:func:`api_options`), and open their client the same
way (:func:`open_client`), so that settings are resolved in exactly one place,
:meth:`batchkit.client.Client.from_settings`, and the key of every client opened is known to
the log filter before anything can log it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from batchkit.redact import RedactingFilter

if TYPE_CHECKING:  # the HTTP stack is imported only by the commands that use it
    from batchkit.client import Client

__all__ = ["ApiSettings", "api_options", "debug_logging", "open_client"]

F = TypeVar("F", bound=Callable[..., Any])

#: Only batchkit's own logger: urllib3's DEBUG lines print whole URLs, and a presigned
#: download URL carries its signature in the query string.
_LOGGER_NAMES = ("batchkit",)


@dataclass(frozen=True)
class ApiSettings:
    """The API options as given on the command line (``None``: not given)."""

    profile: str | None
    base_url: str | None
    api_key_file: str | None
    connect_timeout: float | None
    read_timeout: float | None
    max_attempts: int | None
    allow_insecure_http: bool
    verbose: bool

    def client(self) -> Client:
        """The client, its settings resolved by the one function that resolves them."""
        from batchkit.client import Client

        kwargs: dict[str, Any] = {"allow_insecure_http": self.allow_insecure_http}
        if self.connect_timeout is not None:
            kwargs["connect_timeout"] = self.connect_timeout
        if self.read_timeout is not None:
            kwargs["read_timeout"] = self.read_timeout
        if self.max_attempts is not None:
            kwargs["max_attempts"] = self.max_attempts
        client = Client.from_settings(
            profile=self.profile,
            base_url=self.base_url,
            api_key_file=self.api_key_file,
            **kwargs,
        )
        return client


def api_options(func: F) -> F:
    """``--profile``, ``--base-url``, ``--api-key-file``, the timeouts, ``-v``: one settings object.

    The command receives them as ``api: ApiSettings``.
    """
    timeout = click.FloatRange(min=0, min_open=True)
    decorators = [
        click.option("--profile", help=_PROFILE_HELP),
        click.option(
            "--base-url",
            help="The API's base URL (default: $BATCHKIT_BASE_URL, else the profile's).",
        ),
        click.option(
            "--api-key-file",
            type=click.Path(dir_okay=False),
            help="Read the API key from this file instead of the profile's variable "
            "(ORQ_API_KEY, OPENAI_API_KEY, ...).",
        ),
        click.option("--connect-timeout", type=timeout, metavar="SECONDS", help="Connect timeout."),
        click.option("--read-timeout", type=timeout, metavar="SECONDS", help="Read timeout."),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1, max=10),
            metavar="N",
            help="Attempts per request on 429, 5xx and network errors (default 5).",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Allow sending the key over plain http:// to a host other than loopback.",
        ),
        click.option(
            "-v", "--verbose", is_flag=True, help="Log each HTTP call to stderr (key redacted)."
        ),
    ]

    def collect(**kwargs: Any) -> Any:
        settings = ApiSettings(
            profile=kwargs.pop("profile"),
            base_url=kwargs.pop("base_url"),
            api_key_file=kwargs.pop("api_key_file"),
            connect_timeout=kwargs.pop("connect_timeout"),
            read_timeout=kwargs.pop("read_timeout"),
            max_attempts=kwargs.pop("max_attempts"),
            allow_insecure_http=kwargs.pop("allow_insecure_http"),
            verbose=kwargs.pop("verbose"),
        )
        with debug_logging(settings.verbose):
            return func(api=settings, **kwargs)

    collect.__name__ = func.__name__
    collect.__doc__ = func.__doc__
    wrapped: Any = collect
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return wrapped  # type: ignore[no-any-return]


def _profile_help() -> str:
    """``--profile``'s help: one line per profile, from the profiles themselves."""
    from batchkit.limits import PROFILES

    lines = [f"{name}: {profile.description}." for name, profile in PROFILES.items()]
    return "\b\nProvider profile (default: $BATCHKIT_PROFILE, else orq):\n" + "\n".join(lines)


_PROFILE_HELP = _profile_help()


# --- logging with the key redacted ---------------------------------------------------------

_redactor = RedactingFilter()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextmanager
def debug_logging(enabled: bool) -> Iterator[None]:
    """While the command runs: batchkit's DEBUG records on stderr, redacted."""
    if not enabled:
        yield
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("batchkit: %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_redactor)
    saved = []
    for name in _LOGGER_NAMES:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _register_secret(client: Client) -> None:
    """Let the log filter know the key (and any URL credentials) itself, so that no library
    can log them by accident."""
    for secret in getattr(client, "_secrets", ()):
        _redactor.secrets.add(secret.reveal())


@contextmanager
def open_client(api: ApiSettings) -> Iterator[Client]:
    client = api.client()
    _register_secret(client)
    try:
        yield client
    finally:
        client.close()
