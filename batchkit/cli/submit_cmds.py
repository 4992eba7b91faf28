"""``batchkit submit``, ``status``, ``list``, ``cancel`` and ``wait``: the Batch API from a shell.

A thin layer over :mod:`batchkit.submit` and :class:`batchkit.client.Client`: it turns options
into calls, results into text or JSON, progress callbacks into tqdm bars (on a terminal only),
and errors into one stderr line and the exit code of DESIGN.md.  Settings (profile, base URL,
key) are resolved in exactly one place, :meth:`Client.from_settings`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import click

from batchkit.cli.common import (
    EXIT_BATCH_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
    echo_json,
    fail,
    format_option,
    handle_errors,
    progress_bar,
    quiet_option,
    show_progress,
    warn,
)
from batchkit.cli.options import (
    endpoint_option,
    limit_override_options,
    resolve_limits,
    results_options,
)
from batchkit.errors import InvalidInputError, UsageError, WaitTimeout

if TYPE_CHECKING:  # the HTTP stack is imported only by the commands that use it
    from batchkit.client import Batch, Client
    from batchkit.collect import CollectedResults
    from batchkit.submit import SubmitResult
    from batchkit.validate import FileReport

F = TypeVar("F", bound=Callable[..., Any])

#: Only batchkit's own logger: urllib3's DEBUG lines print whole URLs, and a presigned
#: download URL carries its signature in the query string.
_LOGGER_NAMES = ("batchkit",)


# --- option types -------------------------------------------------------------------------

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


# --- options shared by every API command --------------------------------------------------


@dataclass(frozen=True)
class ApiSettings:
    """The API options as given on the command line (``None``: not given)."""

    profile: str | None
    base_url: str | None
    api_key_file: str | None
    connect_timeout: float | None
    read_timeout: float | None
    max_attempts: int | None
    allow_insecure_http: bool
    verbose: bool

    def client(self) -> Client:
        """The client, its settings resolved by the one function that resolves them."""
        from batchkit.client import Client

        kwargs: dict[str, Any] = {"allow_insecure_http": self.allow_insecure_http}
        if self.connect_timeout is not None:
            kwargs["connect_timeout"] = self.connect_timeout
        if self.read_timeout is not None:
            kwargs["read_timeout"] = self.read_timeout
        if self.max_attempts is not None:
            kwargs["max_attempts"] = self.max_attempts
        client = Client.from_settings(
            profile=self.profile,
            base_url=self.base_url,
            api_key_file=self.api_key_file,
            **kwargs,
        )
        return client


def api_options(func: F) -> F:
    """``--profile``, ``--base-url``, ``--api-key-file``, the timeouts, ``-v``: one settings object.

    The command receives them as ``api: ApiSettings``.
    """
    timeout = click.FloatRange(min=0, min_open=True)
    decorators = [
        click.option(
            "--profile",
            help="Provider profile: orq (the default), orq-router, openai, azure, together, "
            "groq. Default: $BATCHKIT_PROFILE, else orq.",
        ),
        click.option(
            "--base-url",
            help="The API's base URL (default: $BATCHKIT_BASE_URL, else the profile's).",
        ),
        click.option(
            "--api-key-file",
            type=click.Path(dir_okay=False),
            help="Read the API key from this file instead of the profile's variable "
            "(ORQ_API_KEY, OPENAI_API_KEY, ...).",
        ),
        click.option("--connect-timeout", type=timeout, metavar="SECONDS", help="Connect timeout."),
        click.option("--read-timeout", type=timeout, metavar="SECONDS", help="Read timeout."),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1, max=10),
            metavar="N",
            help="Attempts per request on 429, 5xx and network errors (default 5).",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Allow sending the key over plain http:// to a host other than loopback.",
        ),
        click.option(
            "-v", "--verbose", is_flag=True, help="Log each HTTP call to stderr (key redacted)."
        ),
    ]

    def collect(**kwargs: Any) -> Any:
        settings = ApiSettings(
            profile=kwargs.pop("profile"),
            base_url=kwargs.pop("base_url"),
            api_key_file=kwargs.pop("api_key_file"),
            connect_timeout=kwargs.pop("connect_timeout"),
            read_timeout=kwargs.pop("read_timeout"),
            max_attempts=kwargs.pop("max_attempts"),
            allow_insecure_http=kwargs.pop("allow_insecure_http"),
            verbose=kwargs.pop("verbose"),
        )
        with debug_logging(settings.verbose):
            return func(api=settings, **kwargs)

    collect.__name__ = func.__name__
    collect.__doc__ = func.__doc__
    wrapped: Any = collect
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return wrapped  # type: ignore[no-any-return]


# --- logging with the key redacted ---------------------------------------------------------

_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
)


class RedactingFilter(logging.Filter):
    """Replaces bearer tokens, URL credentials and any registered secret with ``***``.

    A registered secret shorter than 8 characters is replaced only as a whole token (see
    :func:`batchkit.client.redact_secret`), so that a short key does not mangle paths and ids.

    The client never logs its key; this is the second lock on the door, against mistakes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        # Imported here, not at the top: a record is logged only after a client exists.
        from batchkit.client import redact_secret, redact_userinfo

        for secret in self.secrets:
            text = redact_secret(text, secret, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)}***", text)
        return redact_userinfo(text, "***")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_redactor = RedactingFilter()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextmanager
def debug_logging(enabled: bool) -> Iterator[None]:
    """While the command runs: batchkit's DEBUG records on stderr, redacted."""
    if not enabled:
        yield
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("batchkit: %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_redactor)
    saved = []
    for name in _LOGGER_NAMES:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _register_secret(client: Client) -> None:
    """Let the log filter know the key (and any URL credentials) itself, so that no library
    can log them by accident."""
    for secret in getattr(client, "_secrets", ()):
        _redactor.secrets.add(secret.reveal())


@contextmanager
def open_client(api: ApiSettings) -> Iterator[Client]:
    client = api.client()
    _register_secret(client)
    try:
        yield client
    finally:
        client.close()


# --- how batches are shown ----------------------------------------------------------------


def counts_text(batch: Batch) -> str:
    counts = batch.request_counts
    text = f"{counts.completed + counts.failed:,}/{counts.total:,} requests"
    if counts.failed:
        text += f", {counts.failed:,} failed"
    return text


def _when(timestamp: int | None) -> str:
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
        ("created", _when(batch.created_at) if batch.created_at else None),
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
    from batchkit.validate import Issue

    where = path or batch.input_file_id or batch.id
    for error in batch.errors:
        issue = Issue(
            line=error.line,
            code=error.code or "error",
            param=error.param,
            message=error.message or "(no message)",
        )
        click.echo(issue_line(where, issue))


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


# --- wait ---------------------------------------------------------------------------------


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


# --- the commands -------------------------------------------------------------------------


@click.command()
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@endpoint_option
@click.option(
    "--metadata",
    "metadata_pairs",
    type=MetadataPair(),
    multiple=True,
    metavar="KEY=VALUE",
    callback=metadata_dict,
    help="Attach metadata to the batch (repeatable; at most 16 pairs; batchkit adds "
    "batchkit_sha256 for re-run detection when you give at most 15).",
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
@format_option("text", "json")
@quiet_option
@api_options
@handle_errors
def submit(
    api: ApiSettings,
    path: str,
    endpoint: str | None,
    metadata_pairs: dict[str, str],
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
    output_format: str,
    quiet: bool,
) -> None:
    """Validate FILE, upload it and create a batch; optionally wait for it.

    Re-running with the same file reports the batch already made from it (same sha256)
    instead of creating another, unless --force.  Exit 0 on success, 1 if the file is
    invalid (nothing is sent), 2 on a usage error, 3 if the API or network fails, 4 if
    --wait sees the batch fail, expire or be cancelled (or, with -o, any request not
    succeed), 5 if --timeout ends the wait.
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
                    limits=limits,
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
        from batchkit.client import display_url

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
        (b.id, b.status, b.endpoint or "-", _when(b.created_at), counts_text(b)) for b in batches
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


COMMANDS: tuple[click.Command, ...] = (submit, status, list_cmd, cancel, wait)
