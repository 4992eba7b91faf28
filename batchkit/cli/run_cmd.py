"""``batchkit run`` (prompts in, answers out, one resumable job) and ``batchkit job``.

Thin layers over :func:`batchkit.run.run_job`, :func:`batchkit.run.cancel_job` and the job
file (:mod:`batchkit.job`): options in, a progress bar on a terminal, the summary and the
exit code out.  In CI (no terminal) nothing but the summary is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from batchkit.cli.api import ApiSettings, api_options, open_client
from batchkit.cli.common import (
    EXIT_BATCH_FAILED,
    EXIT_OK,
    echo_json,
    format_option,
    handle_errors,
    progress_bar,
    quiet_option,
    show_progress,
)
from batchkit.cli.options import (
    csv_options,
    encoding_option,
    endpoint_option,
    limit_override_options,
    max_enqueued_tokens_option,
    resolve_limits,
)
from batchkit.cli.report import printable
from batchkit.cli.results_cmd import status_lines
from batchkit.cli.submit_cmds import metadata_option

if TYPE_CHECKING:
    from batchkit.run import RunEvent, RunResult

__all__ = ["job", "run"]


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The results file: NAME.jsonl (one JSON object per request) or NAME.csv.",
)
@click.option(
    "--job",
    "job_path",
    type=click.Path(dir_okay=False),
    help="The job file (default: OUTPUT.job.db); its shards and downloads go beside it.",
)
@click.option("--restart", is_flag=True, help="Forget the job file and start the job again.")
@endpoint_option
@click.option("--model", help="Fill a missing body.model with this; a different one is an error.")
@limit_override_options
@csv_options
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Leave invalid requests out (listed in the job's rejects file) and send the rest.",
)
@metadata_option(
    "Metadata for every batch (repeatable; at most 14 pairs: batchkit adds batchkit_job and "
    "batchkit_sha256)."
)
@click.option("--completion-window", default="24h", show_default=True, help="The batches' window.")
@click.option(
    "--max-active",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Batches in flight at a time.",
)
@click.option(
    "--max-rounds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Rounds: 1 sends each request once; each further round resends what is worth it.",
)
@max_enqueued_tokens_option
@encoding_option
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="First pause between polls; it grows to 60 s while nothing changes.",
)
@format_option("text", "json")
@quiet_option
@api_options
@handle_errors
def run(
    api: ApiSettings,
    inputs: tuple[str, ...],
    output: str,
    job_path: str | None,
    restart: bool,
    endpoint: str | None,
    model: str | None,
    max_requests: int | None,
    max_bytes: int | None,
    max_embedding_inputs: int | None,
    prompt_column: str | None,
    system: str | None,
    id_column: str | None,
    skip_invalid: bool,
    metadata_pairs: dict[str, str],
    completion_window: str,
    max_active: int,
    max_rounds: int,
    max_enqueued_tokens: int | None,
    encoding: str | None,
    poll_interval: float,
    output_format: str,
    quiet: bool,
) -> None:
    """Run INPUT (prompts or requests) as batches and write every answer to OUTPUT.

    \b
    INPUT is read as `batchkit build` reads it (JSONL, a JSON array, or CSV with
    --prompt-column). The job builds and validates the shards (nothing is sent if a request
    is invalid, unless --skip-invalid), sends at most --max-active batches at a time, collects
    each one's results, sends the retryable failures (expired, cancelled, missing,
    408/409/429/5xx) again for up to --max-rounds rounds, and writes OUTPUT: every request
    once, in input order, with its final status.

    \b
    Its state is in the job file (OUTPUT.job.db). Stopped at any moment (Ctrl-C, a killed CI
    job, a sleeping laptop), the same command picks up where it stopped: no batch is created
    twice and no finished batch is downloaded twice. Another input or other options for an
    existing job file are refused (exit 2) unless --restart. A batch refused for capacity
    (token_limit_exceeded, or a 429 on create) is sent again once another batch of the job
    has finished. With --max-enqueued-tokens N (or $BATCHKIT_MAX_ENQUEUED_TOKENS) the shards
    are split to stay under N prompt tokens and the job's batches in flight never hold more
    than N: the next shard goes once an earlier one has finished.

    \b
    Exit 0 when every request succeeded; 4 when some did not after the last round (the
    results are still written); 1 when a request is invalid (nothing sent); 2 for usage and
    job-file problems; 3 when the API or network fails (run again to resume); 130 Ctrl-C.
    """
    from batchkit.run import run_job

    limits = resolve_limits(api.profile, max_requests, max_bytes, max_embedding_inputs)
    bar_wanted = show_progress(quiet, output_format)
    # Events go above the bar on a terminal; in CI only the summary is printed.
    events = bar_wanted or (api.verbose and output_format == "text")
    with open_client(api) as client, progress_bar(bar_wanted, unit=" requests", desc="run") as bar:
        result = run_job(
            list(inputs),
            output,
            job=job_path,
            client=client,
            endpoint=endpoint,
            model=model,
            prompt_column=prompt_column,
            system=system,
            id_column=id_column,
            skip_invalid=skip_invalid,
            limits=limits,
            metadata=metadata_pairs,
            completion_window=completion_window,
            max_active=max_active,
            max_rounds=max_rounds,
            max_enqueued_tokens=max_enqueued_tokens,
            encoding=encoding,
            restart=restart,
            poll_interval=poll_interval,
            on_event=_event_printer(bar) if events else None,
            progress=_progress_updater(bar),
        )
    if output_format == "json":
        echo_json(result.to_dict())
    elif not quiet:
        for line in run_summary(result):
            click.echo(printable(line), err=True)
    raise SystemExit(EXIT_OK if result.all_succeeded else EXIT_BATCH_FAILED)


def run_summary(result: RunResult) -> list[str]:
    """The text summary of a run: what it sent, counts by status, errors, tokens, files."""
    summary = result.summary
    title = (
        f"{result.shards} shard(s), {result.batches} batch(es), {result.rounds} round(s)"
        + (f", {result.refusals} capacity refusal(s) waited out" if result.refusals else "")
        + (" (the job was cancelled)" if result.cancelled else "")
    )
    lines = [title, *status_lines(summary)]
    if result.rejected:
        lines.append(f"  {result.rejected:,} invalid request(s) not sent: {result.rejects_file}")
    lines.append(f"wrote {result.results_file} (job file {result.job_file})")
    return lines


def _event_printer(bar: Any) -> Callable[[RunEvent], None]:
    def show(event: RunEvent) -> None:
        line = printable(f"batchkit: {event.message}")
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    return show


def _progress_updater(bar: Any) -> Callable[[int, int], None] | None:
    if bar is None:
        return None

    def update(finished: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(finished - bar.n)

    return update


# --- batchkit job ---------------------------------------------------------------------------


@click.group()
def job() -> None:
    """Look at a `batchkit run` job, or cancel it."""


@job.command("status")
@click.argument("job_path", metavar="JOB.db", type=click.Path(dir_okay=False))
@format_option("text", "json")
@handle_errors
def job_status(job_path: str, output_format: str) -> None:
    """Each shard and round of the job: its batch, status and request counts.

    Works while the job runs (it only reads the job file).
    """
    from batchkit.job import JobFile

    with JobFile.open(job_path) as store:
        described = store.describe()
    if output_format == "json":
        echo_json(described)
        return
    for line in job_lines(described):
        click.echo(printable(line))


def job_lines(described: dict[str, Any]) -> list[str]:
    """``batchkit job status``'s text: a header, one line per attempt, the request counts."""
    state = (
        "cancelled"
        if described["cancelled"]
        else "finished"
        if described["finished"]
        else "not finished"
    )
    total = sum(shard["requests"] for shard in described["shards"])
    lines = [
        f"job {described['job_id']} ({described['job_file']}): {len(described['shards'])} "
        f"shard(s), {total:,} request(s), {state}",
        f"{'shard':>5} {'round':>5} {'try':>3} {'requests':>9}  {'state':<10} "
        f"{'batch':<32} {'status':<11} done/total",
    ]
    for shard in described["shards"]:
        for attempt in shard["attempts"]:
            counts = attempt["request_counts"] or {}
            done = counts.get("completed", 0) + counts.get("failed", 0)
            lines.append(
                f"{shard['shard']:>5} {attempt['round']:>5} {attempt['try']:>3} "
                f"{attempt['requests']:>9,}  {attempt['state']:<10} "
                f"{attempt['batch_id'] or '-':<32} {attempt['status'] or '-':<11} "
                f"{done:,}/{counts.get('total', 0):,}"
            )
            if attempt["note"]:
                lines.append(f"{'':>26}{attempt['note']}")
    if described["requests"]:
        known = ", ".join(f"{n:,} {status}" for status, n in sorted(described["requests"].items()))
        lines.append(f"requests with a result: {known}")
    return lines


@job.command("cancel")
@click.argument("job_path", metavar="JOB.db", type=click.Path(dir_okay=False))
@format_option("text", "json")
@api_options
@handle_errors
def job_cancel(api: ApiSettings, job_path: str, output_format: str) -> None:
    """Cancel every running batch of the job; the job file records it.

    A run of the job (the one going now, or a later one) then sends nothing new: it collects
    what the batches did and writes the results (requests never sent are `cancelled`).
    """
    from batchkit.run import cancel_job

    with open_client(api) as client:
        batches = cancel_job(job_path, client)
    if output_format == "json":
        echo_json({"job_file": job_path, "cancelled": [batch.raw for batch in batches]})
        return
    for batch in batches:
        click.echo(f"{batch.id} {batch.status}")
    click.echo(
        f"job {job_path} cancelled ({len(batches)} running batch(es)); "
        f"`batchkit run` with the same arguments writes what they did",
        err=True,
    )
