"""``batchkit status``, ``list``, ``cancel`` and ``wait``: the batches from a shell.

Each command opens a client (:mod:`batchkit.cli.api`), makes one call (or, for ``wait``, polls
until the batch ends: :mod:`batchkit.cli.waiting`) and shows the batch as text
(:mod:`batchkit.cli.batch_text`) or as the server's JSON.
"""

from __future__ import annotations

import click

from batchkit.cli.api import ApiSettings, api_options, open_client
from batchkit.cli.batch_text import batch_lines, counts_text, print_batch_errors, when_text
from batchkit.cli.common import (
    EXIT_OK,
    echo_json,
    format_option,
    handle_errors,
    quiet_option,
)
from batchkit.cli.waiting import (
    finish_waited,
    interval_option,
    timed_out,
    timeout_option,
    wait_or_time_out,
)

__all__ = ["COMMANDS", "cancel", "list_cmd", "status", "wait"]


@click.command()
@click.argument("batch_id", metavar="ID")
@format_option("text", "json")
@api_options
@handle_errors
def status(api: ApiSettings, batch_id: str, output_format: str) -> None:
    """Show a batch: its status, request counts and files."""
    with open_client(api) as client:
        batch = client.retrieve_batch(batch_id)
    if output_format == "json":
        echo_json(batch.raw)
        return
    for line in batch_lines(batch):
        click.echo(line)
    if batch.errors:
        print_batch_errors(batch)


@click.command(name="list")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=100),
    default=20,
    show_default=True,
    help="How many batches (newest first).",
)
@click.option("--after", metavar="ID", help="Start after this batch id (the next page).")
@format_option("text", "json")
@api_options
@handle_errors
def list_cmd(api: ApiSettings, limit: int, after: str | None, output_format: str) -> None:
    """List batches, newest first, one line each."""
    with open_client(api) as client:
        batches = client.list_batches(limit=limit, after=after)
    if output_format == "json":
        echo_json(
            {
                "data": [batch.raw for batch in batches],
                "last_id": batches[-1].id if batches else None,
            }
        )
        return
    if not batches:
        click.echo("no batches", err=True)
        return
    rows = [
        (b.id, b.status, b.endpoint or "-", when_text(b.created_at), counts_text(b))
        for b in batches
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[4]]))


@click.command()
@click.argument("batch_id", metavar="ID")
@format_option("text", "json")
@api_options
@handle_errors
def cancel(api: ApiSettings, batch_id: str, output_format: str) -> None:
    """Cancel a batch.  A batch that has already finished is shown as it is (exit 0), on
    every server, including those that refuse to cancel it (OpenAI's 400, llama-stack's 409).
    """
    with open_client(api) as client:
        batch = client.cancel_batch(batch_id)
    if output_format == "json":
        echo_json(batch.raw)
        return
    click.echo(f"{batch.id}: {batch.status} ({counts_text(batch)})")
    if batch.status in _ENDED_UNCANCELLED:
        click.echo(
            f"batch {batch.id} had already ended ({batch.status}): nothing to cancel", err=True
        )


#: Statuses a cancel cannot have caused: the batch had ended before it.
_ENDED_UNCANCELLED = frozenset({"completed", "failed", "expired"})


@click.command()
@click.argument("batch_id", metavar="ID")
@timeout_option
@interval_option
@format_option("text", "json")
@quiet_option
@api_options
@handle_errors
def wait(
    api: ApiSettings,
    batch_id: str,
    timeout: float | None,
    interval: float,
    output_format: str,
    quiet: bool,
) -> None:
    """Wait until a batch ends.  Exit 0 completed; 4 failed, expired or cancelled; 5 if
    --timeout ends the wait first (with --format json the last state seen is printed).
    """
    with open_client(api) as client:
        batch, timeout_error = wait_or_time_out(
            client,
            batch_id,
            timeout=timeout,
            interval=interval,
            output_format=output_format,
            quiet=quiet,
        )
    code = EXIT_OK
    if batch is not None and timeout_error is None:
        code = finish_waited(batch, output_format, quiet)
    if output_format == "json" and batch is not None:
        echo_json(batch.raw)
    if timeout_error is not None:
        timed_out(timeout_error, batch_id)
    raise SystemExit(code)


COMMANDS: tuple[click.Command, ...] = (status, list_cmd, cancel, wait)
