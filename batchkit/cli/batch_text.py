"""How a batch reads in text: its status line, its facts, how it ended, the server's errors.

``status``, ``list``, ``cancel``, the wait and ``results`` show batches the same way, so that a
batch reads alike wherever it appears; the server's own errors come in ``batchkit validate``'s
form (``path:line: code: message``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from batchkit.batches import Batch

__all__ = ["batch_lines", "counts_text", "final_line", "print_batch_errors", "when_text"]


def counts_text(batch: Batch) -> str:
    counts = batch.request_counts
    text = f"{counts.completed + counts.failed:,}/{counts.total:,} requests"
    if counts.failed:
        text += f", {counts.failed:,} failed"
    return text


def when_text(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def batch_lines(batch: Batch) -> list[str]:
    """``status``'s text: the id and status, then one ``key: value`` line per known fact."""
    lines = [f"{batch.id}: {batch.status} ({counts_text(batch)})"]
    facts = [
        ("endpoint", batch.endpoint),
        ("input file", batch.input_file_id),
        ("output file", batch.output_file_id),
        ("errors file", batch.error_file_id),
        ("created", when_text(batch.created_at) if batch.created_at else None),
        ("completion window", batch.completion_window),
    ]
    lines += [f"  {name}: {value}" for name, value in facts if value]
    for key, value in sorted(batch.metadata.items()):
        lines.append(f"  metadata {key}: {value}")
    if batch.errors:
        lines.append(f"  {len(batch.errors)} error(s), see below")
    return lines


def final_line(batch: Batch) -> str:
    """``completed: 48,108 completed, 12 failed; output file_..., errors file_...``."""
    counts = batch.request_counts
    text = f"{batch.status}: {counts.completed:,} completed, {counts.failed:,} failed"
    files = []
    if batch.output_file_id:
        files.append(f"output {batch.output_file_id}")
    if batch.error_file_id:
        files.append(f"errors {batch.error_file_id}")
    if files:
        text += "; " + ", ".join(files)
    return f"{batch.id} {text}"


def print_batch_errors(batch: Batch, path: str | None = None) -> None:
    """The batch's own ``errors`` in ``batchkit validate``'s form: ``path:line: code: message``."""
    from batchkit.cli.report import issue_line
    from batchkit.issues import Issue

    where = path or batch.input_file_id or batch.id
    for error in batch.errors:
        issue = Issue(
            line=error.line,
            code=error.code or "error",
            param=error.param,
            message=error.message or "(no message)",
        )
        click.echo(issue_line(where, issue))
