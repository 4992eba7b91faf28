"""``batchkit results``: a finished batch's answers, one per request, and the retry file.

A thin layer over :func:`batchkit.collect.collect_results`: it waits first when asked, prints
the summary (counts by status, the most frequent errors, token totals) and turns the outcome
into an exit code: 0 when every request succeeded, 4 when some did not (the files are still
written).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from batchkit.cli.api import ApiSettings, api_options, open_client
from batchkit.cli.batch_text import print_batch_errors
from batchkit.cli.common import (
    EXIT_BATCH_FAILED,
    EXIT_OK,
    echo_json,
    format_option,
    handle_errors,
    quiet_option,
)
from batchkit.cli.options import results_options
from batchkit.cli.report import issue_line, printable
from batchkit.cli.waiting import interval_option, timed_out, timeout_option, wait_or_time_out
from batchkit.issues import Issue
from batchkit.results import STATUSES

if TYPE_CHECKING:
    from batchkit.collect import CollectedResults
    from batchkit.result_files import Summary

#: At most this many join problems are printed; ``--format json`` has them all.
_SHOWN_PROBLEMS = 20


@click.command()
@click.argument("batch_id", metavar="ID")
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False),
    help="The batch file that was submitted: results come in its order, every request once, "
    "and requests the server left out are 'missing'. Needed for --retry-file.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The results file: NAME.jsonl (one JSON object per request) or NAME.csv (flat "
    "columns for a spreadsheet).",
)
@results_options
@click.option("--wait", "wait_done", is_flag=True, help="Wait for the batch to end first.")
@timeout_option
@interval_option
@format_option("text", "json")
@quiet_option
@api_options
@handle_errors
def results(
    api: ApiSettings,
    batch_id: str,
    input_path: str | None,
    output: str,
    retry_file: str | None,
    retry_all: bool,
    include_request: bool,
    keep_files: str | None,
    wait_done: bool,
    timeout: float | None,
    interval: float,
    output_format: str,
    quiet: bool,
) -> None:
    """Download a finished batch's results, join each answer to its request, write them.

    \b
    Each result: custom_id, status (succeeded, failed, expired, cancelled, missing),
    status_code, body, error (code, message), usage, line (in --input).
    The summary goes to stderr (--format json: one JSON document on stdout).
    Exit 0 when every request succeeded; 4 when some did not (the files are still written);
    2 when the batch has not finished (--wait waits for it); 3 when the API or network fails;
    5 when --timeout ends the wait first.
    """
    from batchkit.collect import check_collect_options, collect_results

    check_collect_options(
        output, input=input_path, retry_file=retry_file, include_request=include_request
    )
    with open_client(api) as client:
        batch = client.retrieve_batch(batch_id)
        if not batch.is_terminal and wait_done:
            waited, timeout_error = wait_or_time_out(
                client,
                batch_id,
                timeout=timeout,
                interval=interval,
                output_format=output_format,
                quiet=quiet,
            )
            if timeout_error is not None:
                timed_out(timeout_error, batch_id)
            assert waited is not None
            batch = waited
        collected = collect_results(
            client,
            batch,
            output,
            input=input_path,
            retry_file=retry_file,
            retry_all=retry_all,
            include_request=include_request,
            keep_dir=keep_files,
        )
    raise SystemExit(report_collected(collected, output_format, quiet, input_path))


def report_collected(
    collected: CollectedResults,
    output_format: str,
    quiet: bool,
    input_path: str | None,
    *,
    print_json: bool = True,
) -> int:
    """Print what was collected; the exit code: 0 all succeeded, else 4.

    With ``--format json`` the document goes to stdout, unless ``print_json`` is False (a
    caller that puts it in a document of its own).
    """
    if output_format == "json":
        if print_json:
            echo_json(collected.to_dict())
    else:
        if collected.batch.errors:
            print_batch_errors(collected.batch, input_path)
        for problem in collected.problems[:_SHOWN_PROBLEMS]:
            issue = Issue(problem.line, problem.code, None, problem.message, severity="warning")
            click.echo(issue_line(problem.path, issue), err=True)
        hidden = len(collected.problems) - _SHOWN_PROBLEMS
        if hidden > 0:
            click.echo(f"warning: {hidden:,} more problems (see --format json)", err=True)
        if not quiet:
            for line in summary_lines(collected):
                click.echo(printable(line), err=True)
    if collected.all_succeeded:
        return EXIT_OK
    if not collected.summary.total and collected.batch.status != "completed":
        click.echo(
            f"batchkit: error: batch {collected.batch.id} ended {collected.batch.status} "
            "with no results",
            err=True,
        )
    return EXIT_BATCH_FAILED


def status_lines(summary: Summary) -> list[str]:
    """Counts by status (``12 requests: 10 succeeded, 2 failed``), then the top errors and the
    token totals, indented."""
    counts = ", ".join(
        f"{summary.counts[status]:,} {status}"
        for status in STATUSES
        if summary.counts[status] or status == "succeeded"
    )
    lines = [f"{summary.total:,} request{'' if summary.total == 1 else 's'}: {counts}"]
    for error, count, example in summary.top_errors():
        lines.append(f"  {count:,} x {error} (e.g. {example})")
    if summary.usage:
        tokens = ", ".join(f"{name} {value:,}" for name, value in sorted(summary.usage.items()))
        lines.append(f"  tokens: {tokens}")
    return lines


def summary_lines(collected: CollectedResults) -> list[str]:
    """The text summary: counts by status, top errors, tokens, the files written."""
    summary = collected.summary
    first, *rest = status_lines(summary)
    lines = [f"{collected.batch.id} {collected.batch.status}: {first}", *rest]
    written = f"wrote {collected.results_file}"
    if collected.retry_file is not None:
        written += f"; {summary.retry:,} to retry in {collected.retry_file}"
    elif collected.removed_stale_retry_file:
        written += "; nothing to retry (removed the earlier retry file)"
    lines.append(written)
    return lines
