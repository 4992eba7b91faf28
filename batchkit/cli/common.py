"""What every command shares: output formats, exit codes, error handling, progress bars.

Results go to stdout, messages and progress to stderr.  batchkit prints no colour, so
``NO_COLOR`` holds by construction.  A :class:`BatchkitError` becomes one
line on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click
import orjson

from batchkit.errors import BatchkitError

# Exit codes (DESIGN.md).
EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_BATCH_FAILED = 4
EXIT_WAIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE: the reader of stdout went away before the whole output was written.
EXIT_BROKEN_PIPE = 141
#: 128 + SIGTERM, as a shell reports a process the signal ended.
EXIT_TERMINATED = 128 + signal.SIGTERM

F = TypeVar("F", bound=Callable[..., Any])


def format_option(*choices: str) -> Callable[[F], F]:
    """``--format`` with the given choices, the first being the default."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="How to print the result.",
    )


quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="Print only errors: no summary, no progress."
)


class Terminated(BaseException):
    """SIGTERM arrived.  A BaseException, as KeyboardInterrupt is, so that nothing on the way
    swallows it and every cleanup runs (build_batch removes its temporary files)."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` (Python's default would
    just die and leave temporary files behind).

    A second SIGTERM is ignored, so that it cannot cut the cleanup of the first short.  Only
    the main thread may set a handler; elsewhere (a test runner's thread) nothing changes.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, handler)
        installed = True
    except ValueError:
        installed = False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def handle_errors(func: F) -> F:
    """Turn library errors, Ctrl-C and SIGTERM into one stderr line and the right exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _sigterm_raises():
                return func(*args, **kwargs)
        except BatchkitError as error:
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)
        except Terminated:
            fail("terminated", EXIT_TERMINATED)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    """Print ``batchkit: error: message`` on stderr and exit with ``code``."""
    click.echo(f"batchkit: error: {message}", err=True)
    raise SystemExit(code)


def warn(message: str) -> None:
    """Print ``batchkit: warning: message`` on stderr: something the user should know about,
    which does not change the outcome (nor the exit code)."""
    click.echo(f"batchkit: warning: {message}", err=True)


def echo_json(document: Any) -> None:
    """Print ``document`` as indented JSON on stdout."""
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def show_progress(quiet: bool, output_format: str) -> bool:
    """Progress bars only on a terminal, and never with ``--quiet`` or ``--format json``."""
    return not quiet and output_format == "text" and sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool, **tqdm_kwargs: Any) -> Iterator[Any]:
    """A tqdm bar on stderr when ``enabled``, else ``None`` (callers check before updating)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(file=sys.stderr, dynamic_ncols=True, **tqdm_kwargs)
    try:
        yield bar
    finally:
        bar.close()
