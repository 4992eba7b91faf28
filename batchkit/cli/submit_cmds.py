"""``batchkit submit``: validate a file, upload it, create a batch, optionally wait for it.

A thin layer over :mod:`batchkit.submit`: it turns options into the call, the result into text
or JSON and ``$GITHUB_OUTPUT`` lines, the upload's progress callback into a tqdm bar (on a
terminal only), and errors into one stderr line and the exit code of DESIGN.md.  What it shares
with the other API commands lives beside it: the options and client in
:mod:`batchkit.cli.api`, the wait in :mod:`batchkit.cli.waiting`, how a batch reads in
:mod:`batchkit.cli.batch_text`; ``status``, ``list``, ``cancel`` and ``wait`` are in
:mod:`batchkit.cli.batch_cmds`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from batchkit.cli.api import ApiSettings, api_options, open_client
from batchkit.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    echo_json,
    fail,
    format_option,
    handle_errors,
    quiet_option,
    show_progress,
    warn,
)
from batchkit.cli.options import (
    encoding_option,
    endpoint_option,
    limit_override_options,
    max_enqueued_tokens_option,
    resolve_limits,
    results_options,
)
from batchkit.cli.waiting import (
    Duration,
    finish_waited,
    interval_option,
    timed_out,
    timeout_option,
    wait_or_time_out,
)
from batchkit.errors import InvalidInputError, UsageError
from batchkit.redact import display_url

if TYPE_CHECKING:  # the HTTP stack is imported only by the commands that use it
    from batchkit.batches import Batch
    from batchkit.client import Client
    from batchkit.collect import CollectedResults
    from batchkit.issues import FileReport
    from batchkit.submit import SubmitResult

# --- option types -------------------------------------------------------------------------


class MetadataPair(click.ParamType):  # type: ignore[type-arg]
    """``KEY=VALUE``; the value may contain ``=``.  The pairs together: :func:`metadata_dict`."""

    name = "key=value"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return (str(value[0]), str(value[1]))
        key, sep, text = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key.strip(), text


def metadata_dict(
    ctx: click.Context, param: click.Parameter, pairs: tuple[tuple[str, str], ...]
) -> dict[str, str]:
    """``--metadata``'s pairs as a dict, checked before anything is read or sent.

    Every mistake in them (a repeated key, too many pairs, a long key or value, batchkit's own
    key) is a usage error, exit 2, like a malformed pair; the library's checks say what is wrong.
    """
    from batchkit.submit import check_user_metadata

    metadata: dict[str, str] = {}
    for key, value in pairs:
        if key in metadata:
            raise click.BadParameter(f"key {key!r} is given twice", ctx, param)
        metadata[key] = value
    try:
        check_user_metadata(metadata)
    except InvalidInputError as error:
        raise click.BadParameter(str(error), ctx, param) from None
    return metadata


F = TypeVar("F", bound=Callable[..., Any])


def metadata_option(help: str) -> Callable[[F], F]:
    """``--metadata KEY=VALUE`` (repeatable), checked as :func:`metadata_dict` checks it; the
    command gets the pairs as ``metadata_pairs``."""
    return click.option(
        "--metadata",
        "metadata_pairs",
        type=MetadataPair(),
        multiple=True,
        metavar="KEY=VALUE",
        callback=metadata_dict,
        help=help,
    )


def write_github_output(values: dict[str, str]) -> None:
    """Append ``name=value`` lines to ``$GITHUB_OUTPUT`` when a workflow set it.

    A file that cannot be written is a warning, not an error: by then the batch exists and its
    result has been printed, and failing would make a CI job submit it again.
    """
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    lines = [
        f"{name}={value}\n"
        for name, value in values.items()
        if "\n" not in value and "\r" not in value  # never in ids; refuse rather than inject
    ]
    try:
        with open(target, "a", encoding="utf-8") as out:
            out.writelines(lines)
    except OSError as error:
        warn(f"cannot write GITHUB_OUTPUT ({target}): {error.strerror or error}")


# --- the command --------------------------------------------------------------------------


@click.command()
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@endpoint_option
@metadata_option(
    "Attach metadata to the batch (repeatable; at most 16 pairs; batchkit adds "
    "batchkit_sha256 for re-run detection when you give at most 15)."
)
@click.option(
    "--completion-window",
    metavar="WINDOW",
    help="The batch's completion window (default: the profile's, 24h); a window the profile "
    "does not accept is refused before upload (exit 1).",
)
@click.option(
    "--output-expires-after",
    type=Duration(),
    metavar="DURATION",
    help="Delete the output and error files this long after they are made (1h to 30d, e.g. "
    "36h or 7d): OpenAI's output_expires_after, where the profile takes it (openai, orq).",
)
@click.option("--force", is_flag=True, help="Submit even if a batch with this file exists.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would be sent; send nothing.")
@click.option("--wait", "wait_done", is_flag=True, help="Then wait until the batch ends.")
@click.option(
    "-o",
    "--output",
    "results_path",
    type=click.Path(dir_okay=False),
    help="With --wait: then write the results, as `batchkit results --input FILE -o` does "
    "(NAME.jsonl or NAME.csv).",
)
@results_options
@timeout_option
@interval_option
@limit_override_options
@max_enqueued_tokens_option
@encoding_option
@format_option("text", "json")
@quiet_option
@api_options
@handle_errors
def submit(
    api: ApiSettings,
    path: str,
    endpoint: str | None,
    metadata_pairs: dict[str, str],
    completion_window: str | None,
    output_expires_after: float | None,
    force: bool,
    dry_run: bool,
    wait_done: bool,
    results_path: str | None,
    retry_file: str | None,
    retry_all: bool,
    include_request: bool,
    keep_files: str | None,
    timeout: float | None,
    interval: float,
    max_requests: int | None,
    max_bytes: int | None,
    max_embedding_inputs: int | None,
    max_enqueued_tokens: int | None,
    encoding: str | None,
    output_format: str,
    quiet: bool,
) -> None:
    """Validate FILE, upload it and create a batch; optionally wait for it.

    Re-running with the same file reports the batch already made from it (same sha256)
    instead of creating another, unless --force.  With --max-enqueued-tokens (or
    $BATCHKIT_MAX_ENQUEUED_TOKENS) a file over the account's enqueued-token limit is refused
    (token_limit_exceeded) before upload.  Exit 0 on success, 1 if the file is
    invalid or the profile does not serve its endpoint, --completion-window or
    --output-expires-after (nothing is sent), 2 on a usage error, 3 if the API or network
    fails, 4 if --wait sees the batch fail, expire or be cancelled (or, with -o, any request
    not succeed), 5 if --timeout ends the wait.
    """
    from batchkit.collect import check_collect_options
    from batchkit.submit import HASH_KEY, has_room_for_sha256
    from batchkit.submit import submit as submit_file

    collect = _results_request(
        results_path, retry_file, retry_all, include_request, keep_files, wait_done, dry_run
    )
    if collect is not None:
        check_collect_options(
            collect.path, input=path, retry_file=retry_file, include_request=include_request
        )
    metadata = metadata_pairs
    if not has_room_for_sha256(metadata):
        warn(
            f"{len(metadata)} metadata pairs leave no room for {HASH_KEY} (the API allows 16): "
            "re-run detection is off for this batch, so submitting this file again makes "
            "another batch; give at most 15 pairs to keep it"
        )
    with open_client(api) as client:
        limits = resolve_limits(client.profile, max_requests, max_bytes, max_embedding_inputs)
        upload = UploadProgress(show_progress(quiet, output_format))
        try:
            with upload:
                result = submit_file(
                    path,
                    client=client,
                    endpoint=endpoint,
                    metadata=metadata or None,
                    force=force,
                    dry_run=dry_run,
                    completion_window=completion_window,
                    output_expires_after=(
                        None if output_expires_after is None else round(output_expires_after)
                    ),
                    limits=limits,
                    max_enqueued_tokens=max_enqueued_tokens,
                    encoding=encoding,
                    progress=upload,
                    on_validated=None if quiet or output_format != "text" else _print_validated,
                )
        except InvalidInputError as error:
            report: FileReport | None = getattr(error, "report", None)
            if report is not None and not report.valid:
                _print_invalid(report, output_format, quiet)
                fail(f"{path} is invalid: nothing was sent", error.exit_code)
            raise
        except KeyboardInterrupt:
            fail(upload.interrupted_message(), EXIT_INTERRUPTED)

        if output_format == "text" and not quiet:
            _print_submitted(result, path, client)
        batch, timeout_error, code = result.batch, None, EXIT_OK
        collected: CollectedResults | None = None
        try:
            if wait_done and batch is not None and not result.dry_run:
                batch, timeout_error = wait_or_time_out(
                    client,
                    batch.id,
                    timeout=timeout,
                    interval=interval,
                    output_format=output_format,
                    quiet=quiet,
                    path=path,
                )
                if batch is not None and timeout_error is None:
                    code = finish_waited(batch, output_format, quiet, path)
                    if collect is not None:
                        collected, code = collect.run(client, batch, path, output_format, quiet)
            if output_format == "json":
                document = _submit_document(result, batch, waited=wait_done and not dry_run)
                if collected is not None:
                    document["results"] = collected.to_dict()
                echo_json(document)
        finally:  # the batch exists, whatever happened while waiting for it
            _write_submit_outputs(result, batch)
    if timeout_error is not None and result.batch is not None:
        timed_out(timeout_error, result.batch.id)
    raise SystemExit(code)


@dataclass(frozen=True)
class _ResultsRequest:
    """``submit --wait -o``: what to write once the batch has ended."""

    path: str
    retry_file: str | None
    retry_all: bool
    include_request: bool
    keep_files: str | None

    def run(
        self, client: Client, batch: Batch, input_path: str, output_format: str, quiet: bool
    ) -> tuple[CollectedResults, int]:
        """Collect the results; the exit code as ``batchkit results`` gives it."""
        from batchkit.cli.results_cmd import report_collected
        from batchkit.collect import collect_results

        collected = collect_results(
            client,
            batch,
            self.path,
            input=input_path,
            retry_file=self.retry_file,
            retry_all=self.retry_all,
            include_request=self.include_request,
            keep_dir=self.keep_files,
        )
        code = report_collected(collected, output_format, quiet, input_path, print_json=False)
        return collected, code


def _results_request(
    results_path: str | None,
    retry_file: str | None,
    retry_all: bool,
    include_request: bool,
    keep_files: str | None,
    wait_done: bool,
    dry_run: bool,
) -> _ResultsRequest | None:
    """The results to write after the wait, or ``None``; options that need -o refuse without."""
    if results_path is None:
        if retry_file or retry_all or include_request or keep_files:
            raise UsageError(
                "--retry-file, --retry-all, --include-request and --keep-files go with -o "
                "(the results file)"
            )
        return None
    if dry_run or not wait_done:
        raise UsageError("-o writes the batch's results once it ends: it needs --wait")
    return _ResultsRequest(results_path, retry_file, retry_all, include_request, keep_files)


def _write_submit_outputs(result: SubmitResult, batch: Batch | None) -> None:
    """``$GITHUB_OUTPUT``: the batch's id, its input file, whether it was reused, and its latest
    status (after ``--wait``, the one the wait ended on)."""
    if batch is None:
        return
    write_github_output(
        {
            "batch_id": batch.id,
            "file_id": result.file.id if result.file else batch.input_file_id or "",
            "reused": "true" if result.reused else "false",
            "status": batch.status,
        }
    )


class UploadProgress:
    """The upload's progress callback: drives the tqdm bar and knows how far the upload got.

    Knowing the phase lets Ctrl-C say truthfully whether anything was created.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.started = False
        self.sent = 0
        self.total = 0

    def __enter__(self) -> UploadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __call__(self, sent: int, total: int) -> None:
        self.started = True
        self.sent, self.total = sent, total
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                file=sys.stderr,
                dynamic_ncols=True,
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,  # MB as in every other line batchkit prints
                desc="uploading",
            )
        if sent < self.bar.n:  # a retry starts the stream again
            self.bar.reset(total=total)
        self.bar.update(sent - self.bar.n)

    def interrupted_message(self) -> str:
        if self.started and self.total and self.sent >= self.total:
            return (
                "interrupted after the upload: a batch may have been created, "
                "check with `batchkit list`"
            )
        if self.started:
            return "interrupted during the upload: nothing was created"
        return "interrupted: nothing was created"


def _print_invalid(report: FileReport, output_format: str, quiet: bool) -> None:
    from batchkit.cli import report as reporters

    if output_format == "json":
        echo_json(
            {
                "submitted": False,
                "reused": False,
                "dry_run": False,
                "batch": None,
                "file": None,
                "validation": report.to_dict(),
            }
        )
    else:
        reporters.print_text(report, quiet=quiet)


def validated_line(report: FileReport) -> str:
    from batchkit.cli.report import human_bytes

    count = f"{report.requests:,} request{'' if report.requests == 1 else 's'}"
    return f"validated {report.path}: {count}, {human_bytes(report.bytes)}, {report.endpoint}"


def _print_validated(report: FileReport) -> None:
    click.echo(validated_line(report), err=True)


def _print_submitted(result: SubmitResult, path: str, client: Client) -> None:
    if result.dry_run:
        target = display_url(client.base_url).rstrip("/")
        click.echo(
            f"dry run: would upload {path} ({result.report.bytes:,} bytes, sha256 "
            f"{result.sha256}) to {target}{client.profile.files_path}"
        )
        if result.request is not None:
            click.echo(f"and create a batch at {target}{client.profile.batches_path} with:")
            echo_json(result.request)
        click.echo("nothing was sent")
        return
    batch = result.batch
    assert batch is not None
    if result.reused:
        click.echo(
            f"reusing batch {batch.id} ({batch.status}): same sha256 {result.sha256[:12]}..., "
            "nothing uploaded (--force submits again)"
        )
        return
    file_id = result.file.id if result.file is not None else batch.input_file_id
    click.echo(f"uploaded {file_id}   created batch {batch.id} ({batch.status})")


def _submit_document(result: SubmitResult, batch: Batch | None, *, waited: bool) -> dict[str, Any]:
    return {
        "submitted": batch is not None and not result.reused,
        "reused": result.reused,
        "dry_run": result.dry_run,
        "waited": waited,
        "sha256": result.sha256,
        "batch_id": batch.id if batch is not None else None,
        "file_id": (
            result.file.id
            if result.file is not None
            else (batch.input_file_id if batch is not None else None)
        ),
        "batch": batch.raw if batch is not None else None,
        "file": result.file.raw if result.file is not None else None,
        "request": result.request,
        "rerun_detection": result.rerun_detection,
        "validation": result.report.to_dict(),
    }
