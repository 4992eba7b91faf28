"""Options shared by the commands that read batch files: the profile and its limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from batchkit.endpoints import ENDPOINTS
from batchkit.limits import Limits, Profile, get_profile

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


class ByteSize(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A byte count: ``209715200``, ``200MiB``, ``100MB`` or ``1.5GB``."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            self.fail(f"{value!r} is not a size such as 209715200, 200MiB or 100MB", param, ctx)
        return int(float(match.group(1)) * _UNITS[unit])


def limit_override_options(func: F) -> F:
    """``--max-requests``, ``--max-bytes``, ``--max-embedding-inputs``: one limit each."""
    decorators = [
        click.option("--max-requests", type=click.IntRange(min=1), help="Override the limit."),
        click.option("--max-bytes", type=ByteSize(), help="Override the limit (e.g. 100MB)."),
        click.option(
            "--max-embedding-inputs", type=click.IntRange(min=1), help="Override the limit."
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def limit_options(func: F) -> F:
    """``--profile`` and the per-limit overrides (commands that talk to no API)."""
    profile = click.option(
        "--profile",
        help="Provider profile whose limits apply (orq, orq-v2, openai, azure, llama-stack; "
        "default $BATCHKIT_PROFILE or orq).",
    )
    return profile(limit_override_options(func))


def resolve_limits(
    profile: str | Profile | None,
    max_requests: int | None,
    max_bytes: int | None,
    max_embedding_inputs: int | None,
) -> Limits:
    """The profile's limits (a name is resolved by get_profile) with the overrides given."""
    chosen = profile if isinstance(profile, Profile) else get_profile(profile)
    return chosen.limits.replace(
        max_requests=max_requests,
        max_bytes=max_bytes,
        max_embedding_inputs=max_embedding_inputs,
    )


def csv_options(func: F) -> F:
    """``--prompt-column``, ``--system``, ``--id-column``: requests made from a CSV's rows
    (``build`` and ``run``)."""
    decorators = [
        click.option(
            "--prompt-column",
            help="Read CSV: the column that holds each prompt (one request a row).",
        ),
        click.option(
            "--system",
            help="CSV: a system message put before every prompt (chat; on /v1/responses, "
            "the instructions).",
        ),
        click.option("--id-column", help="CSV: the column that holds each row's custom_id."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


endpoint_option = click.option(
    "--endpoint",
    type=click.Choice(list(ENDPOINTS)),
    help="The batch endpoint (default: the first line's url).",
)


def results_options(func: F) -> F:
    """The options that say what to write from the results (``results`` and ``submit``)."""
    decorators = [
        click.option(
            "--retry-file",
            type=click.Path(dir_okay=False),
            help="Write the requests worth sending again (expired, cancelled, missing, and "
            "failed with 408, 409, 429 or 5xx) here, byte for byte from the input.",
        ),
        click.option(
            "--retry-all",
            is_flag=True,
            help="The retry file also gets the other failures (4xx answers usually fail again).",
        ),
        click.option(
            "--include-request",
            is_flag=True,
            help="Each result also carries its request's body (taken from the input).",
        ),
        click.option(
            "--keep-files",
            type=click.Path(file_okay=False),
            help="Also keep the server's own output and error files in this directory.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def encoding_option(func: F) -> F:
    """``--encoding``: the tokenizer to count with, for a model whose own is unknown."""
    from batchkit.tokens import ENCODINGS

    return click.option(
        "--encoding",
        type=click.Choice(list(ENCODINGS)),
        help="Count with this tokenizer (default: the model's; an unknown model's count is an "
        "estimate with o200k_base).",
    )(func)


max_enqueued_tokens_option = click.option(
    "--max-enqueued-tokens",
    type=click.IntRange(min=1),
    help="The account's enqueued-token limit for the model: a file with more prompt tokens "
    "is an error (token_limit_exceeded), at 90% a warning.",
)
