"""``batchkit --version``: the version, and how fresh the provider facts behind it are.

Limits and API paths change on the providers' side without a batchkit release; the date they
were last confirmed lets a user judge whether a surprising verdict may be out of date.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def version_text(version: str) -> str:
    """The two lines ``--version`` prints."""
    from batchkit.limits import FACTS_CONFIRMED  # only when asked: keeps every start light

    return (
        f"batchkit, version {version}\n"
        f"provider facts (limits and API paths in batchkit/limits.py) "
        f"last confirmed {FACTS_CONFIRMED}"
    )


def version_option(version: str) -> Callable[[F], F]:
    """``--version``: print :func:`version_text` and exit, before any other option is read."""

    def show(context: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or context.resilient_parsing:
            return
        click.echo(version_text(version))
        context.exit()

    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=show,
        help="Show the version and the date the provider facts were last confirmed, and exit.",
    )
