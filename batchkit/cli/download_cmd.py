"""``batchkit download``: save a finished batch's output and error files as the server gave them.

A thin layer over :meth:`batchkit.client.Client.download_results`: the files are written
streamed and atomically by the library; this prints where they went, or why there were none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from batchkit.cli.api import ApiSettings, api_options, open_client
from batchkit.cli.common import (
    echo_json,
    format_option,
    handle_errors,
    progress_bar,
    quiet_option,
    show_progress,
)

if TYPE_CHECKING:
    from batchkit.batches import DownloadedResults


@click.command()
@click.argument("batch_id", metavar="ID")
@click.option(
    "-d",
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to save ID_output.jsonl and ID_errors.jsonl (made if missing).",
)
@format_option("text", "json")
@quiet_option
@api_options
@handle_errors
def download(
    api: ApiSettings, batch_id: str, directory: str, output_format: str, quiet: bool
) -> None:
    """Save a finished batch's output and error files, as the server gave them.

    Prints the paths written.  A file the batch does not have (no output when every request
    failed, no errors when none did) is not written.  A batch that has not ended is an
    error (exit 2): wait for it first with `batchkit wait ID`.
    """
    with (
        open_client(api) as client,
        progress_bar(show_progress(quiet, output_format), unit="B", unit_scale=True) as bar,
    ):
        saved = client.download_results(batch_id, directory, progress=_reporter(bar))
    if output_format == "json":
        echo_json(_document(saved))
        return
    for path in (saved.output, saved.errors):
        if path is not None:
            click.echo(str(path))
    if not quiet:
        click.echo(_note(saved), err=True)


def _reporter(bar: Any) -> Callable[[str, int, int | None], None] | None:
    """Drive one bar through both files; a new file, or a retry from 0, starts it again."""
    if bar is None:
        return None
    current: list[str | None] = [None]

    def report(kind: str, written: int, total: int | None) -> None:
        if kind != current[0] or written < bar.n:
            current[0] = kind
            bar.reset(total=total)
            bar.set_description(kind)
        bar.update(written - bar.n)

    return report


def _note(saved: DownloadedResults) -> str:
    """The stderr line: how the batch ended and which files it had."""
    batch = saved.batch
    missing = [
        f"no {name} file"
        for name, path in (("output", saved.output), ("error", saved.errors))
        if path is None
    ]
    text = f"batch {batch.id} {batch.status}"
    return f"{text}: {', '.join(missing)}" if missing else text


def _document(saved: DownloadedResults) -> dict[str, Any]:
    return {
        "batch_id": saved.batch.id,
        "status": saved.batch.status,
        "output": str(saved.output) if saved.output is not None else None,
        "errors": str(saved.errors) if saved.errors is not None else None,
    }
