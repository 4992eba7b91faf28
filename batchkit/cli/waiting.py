"""Waiting for a batch to end, as every command that waits does it.

``submit --wait``, ``wait`` and ``results --wait`` share the ``--timeout`` and ``--interval``
options (durations such as ``90s``, ``30m``, ``1h30m``), the progress shown while waiting (a
bar of the request counts on a terminal, one line per change of status elsewhere), and the
outcome: exit 0 completed, 4 failed, expired or cancelled, 5 when ``--timeout`` ends the wait
first (the batch goes on).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from batchkit.cli.batch_text import counts_text, final_line, print_batch_errors
from batchkit.cli.common import (
    EXIT_BATCH_FAILED,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
    fail,
    progress_bar,
    show_progress,
)
from batchkit.errors import WaitTimeout

if TYPE_CHECKING:
    from batchkit.batches import Batch
    from batchkit.client import Client

__all__ = [
    "Duration",
    "finish_waited",
    "interval_option",
    "parse_duration",
    "timed_out",
    "timeout_option",
    "wait_and_report",
    "wait_or_time_out",
]

_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", re.IGNORECASE)


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """Seconds, fractions allowed: ``90``, ``0.5``, ``90s``, ``30m``, ``24h``, ``1h30m``, ``2d``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        seconds: float | None = (
            float(value) if isinstance(value, (int, float)) else parse_duration(str(value))
        )
        if seconds is None:
            self.fail(f"{value!r} is not a duration such as 90, 0.5, 30m, 24h or 1h30m", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be more than 0 seconds", param, ctx)
        return seconds


def parse_duration(text: str) -> float | None:
    """Seconds in ``text`` (``1h30m`` -> 5400.0), or ``None`` when it is not a duration."""
    compact = text.strip().replace(" ", "")
    if not compact:
        return None
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            return None
        unit = match.group(2).lower()
        if not unit and match.end() != len(compact):  # a bare number only at the end
            return None
        total += float(match.group(1)) * _DURATION_UNITS[unit]
        position = match.end()
    return total if position == len(compact) else None


timeout_option = click.option(
    "--timeout",
    type=Duration(),
    metavar="DURATION",
    help="Give up waiting after this long (exit 5; the batch goes on): seconds (fractions "
    "allowed) or 90s, 30m, 24h. Default: no limit.",
)
interval_option = click.option(
    "--interval",
    type=Duration(),
    default=5.0,
    show_default=True,
    metavar="DURATION",
    help="Seconds between the first polls; later polls back off.",
)


def wait_and_report(
    client: Client,
    batch_id: str,
    *,
    timeout: float | None,
    interval: float,
    output_format: str,
    quiet: bool,
    path: str | None = None,
) -> Batch:
    """Poll until the batch is terminal, with a bar of its request counts on a terminal.

    Off a terminal each change of status is one line on stderr (CI logs stay readable).
    """
    from batchkit.submit import wait_for_batch

    bar_enabled = show_progress(quiet, output_format)
    chatty = not quiet and output_format == "text"
    last_status: list[str] = []
    with progress_bar(bar_enabled, total=0, unit=" requests", desc="waiting") as bar:

        def on_update(batch: Batch) -> None:
            if bar is not None:
                counts = batch.request_counts
                bar.set_description_str(batch.status, refresh=False)
                if counts.total and bar.total != counts.total:
                    bar.total = counts.total
                bar.set_postfix_str(f"{counts.failed:,} failed" if counts.failed else "", False)
                bar.update(counts.completed + counts.failed - bar.n)
            elif chatty and (not last_status or last_status[-1] != batch.status):
                click.echo(f"{batch.id}: {batch.status} ({counts_text(batch)})", err=True)
            last_status.append(batch.status)

        return wait_for_batch(
            client, batch_id, timeout=timeout, interval=interval, on_update=on_update
        )


def wait_or_time_out(
    client: Client, batch_id: str, **options: Any
) -> tuple[Batch | None, WaitTimeout | None]:
    """:func:`wait_and_report`, with a timeout returned rather than raised.

    The batch is then the last state seen, so that ``--format json`` prints it all the same.
    """
    try:
        return wait_and_report(client, batch_id, **options), None
    except WaitTimeout as timeout:
        return timeout.batch, timeout


def timed_out(timeout: WaitTimeout, batch_id: str) -> None:
    """Exit 5 with the timeout's message and how to go on waiting."""
    fail(f"{timeout}; it goes on: `batchkit wait {batch_id}` waits again", EXIT_WAIT_TIMEOUT)


def finish_waited(batch: Batch, output_format: str, quiet: bool, path: str | None = None) -> int:
    """Print the final state of a waited-for batch; the exit code: 0 completed, else 4."""
    if output_format == "text":
        if batch.errors:
            print_batch_errors(batch, path)
        if not quiet or batch.status != "completed":
            click.echo(final_line(batch))
    if batch.status == "completed":
        return EXIT_OK
    reason = f"batch {batch.id} ended {batch.status}"
    if batch.errors:
        reason += f" with {len(batch.errors)} error(s)"
    click.echo(f"batchkit: error: {reason}", err=True)
    return EXIT_BATCH_FAILED
