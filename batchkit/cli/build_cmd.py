"""``batchkit build``: the command, from its options to the files written (or stdout).

It checks the options, then builds (or, with ``--fix``, repairs) into the output; for ``-o -``
into a private temporary file that is copied to stdout only once the whole build succeeded.
Reading the inputs is :mod:`batchkit.inputs`, the report
:mod:`batchkit.cli.build_report`, and the build itself :func:`batchkit.build.build_batch`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import click

from batchkit.build import BuildResult, InvalidRequestError, build_batch
from batchkit.cli.build_report import BuildReport, summary
from batchkit.cli.common import (
    EXIT_BROKEN_PIPE,
    fail,
    format_option,
    handle_errors,
    progress_bar,
    quiet_option,
)
from batchkit.cli.options import (
    csv_options,
    encoding_option,
    endpoint_option,
    limit_options,
    max_enqueued_tokens_option,
    resolve_limits,
)
from batchkit.errors import InvalidInputError, UsageError
from batchkit.fix import FixResult, fix_file
from batchkit.inputs import BuildOptions, read_requests
from batchkit.limits import Limits

__all__ = ["STDOUT", "build", "summary"]

#: ``-o -``: the built file goes to stdout; the reports then go to stderr.
STDOUT = "-"


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Output NAME.jsonl; several files become NAME-001.jsonl, NAME-002.jsonl...; "
    "- writes the one file to stdout.",
)
@endpoint_option
@click.option("--model", help="Fill a missing body.model with this; a different one is an error.")
@limit_options
@click.option(
    "--max-tokens-per-file",
    type=click.IntRange(min=1),
    help="Split by prompt tokens too: each file holds under 90% of N.",
)
@max_enqueued_tokens_option
@encoding_option
@csv_options
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Write invalid requests with their errors to NAME.rejects.jsonl and go on.",
)
@click.option("--fix", is_flag=True, help="Repair one batch file (see below) instead.")
@click.option("-f", "--force", is_flag=True, help="Replace existing output files.")
@format_option("text", "json")
@quiet_option
@handle_errors
def build(
    inputs: tuple[str, ...],
    output: str,
    endpoint: str | None,
    model: str | None,
    profile: str | None,
    max_requests: int | None,
    max_bytes: int | None,
    max_embedding_inputs: int | None,
    max_tokens_per_file: int | None,
    max_enqueued_tokens: int | None,
    encoding: str | None,
    prompt_column: str | None,
    system: str | None,
    id_column: str | None,
    skip_invalid: bool,
    fix: bool,
    force: bool,
    output_format: str,
    quiet: bool,
) -> None:
    """Build batch files from INPUT (- for stdin), split at the profile's limits.

    \b
    INPUT is one of:
      JSONL   one request body, or one full line (custom_id, method, url, body), a line
      JSON    an array of those (read whole; JSONL and CSV are streamed)
      CSV     with --prompt-column (and optional --system, --id-column)
    Missing custom_ids become request-000001, request-000002... by position in the input.
    --endpoint may be left out when the first request names its url.

    \b
    Each file is filled to just under 90% of every limit (44,999 requests, 180 MiB and
    44,999 embedding inputs with the default limits), so every file passes
    `batchkit validate --strict` and keeps 10% headroom; a single request larger than that
    share gets a file of its own.  --max-tokens-per-file (or --max-enqueued-tokens, the
    account's limit; the smaller applies) splits by prompt tokens the same way.
    U+2028, U+2029 and U+0085 are written escaped.
    -o - writes the file to stdout (the summary goes to stderr); requests that need more
    than one file are then a usage error.

    With --fix, repair one batch file instead: strip a byte-order mark, turn \\r\\n into \\n,
    drop blank lines, turn a JSON array into lines, fill missing method, url and custom_id,
    add a missing /v1 to the url, upper-case the method ("post") and escape raw U+2028,
    U+2029 and U+0085.  What cannot be repaired is listed with its line and nothing is
    written (exit 1).

    SIGTERM, like Ctrl-C, removes the temporary files and exits (143; 130 for Ctrl-C).
    """
    limits = resolve_limits(profile, max_requests, max_bytes, max_embedding_inputs)
    given = [limit for limit in (max_tokens_per_file, max_enqueued_tokens) if limit is not None]
    max_tokens = min(given) if given else None
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    if (system or id_column) and not prompt_column:
        raise UsageError("--system and --id-column need --prompt-column (CSV input)")
    if output == STDOUT and skip_invalid:
        raise UsageError("--skip-invalid needs -o NAME.jsonl: the rejects go to NAME.rejects.jsonl")
    if fix:
        if len(inputs) != 1 or inputs[0] == "-":
            raise UsageError("--fix repairs one file, given by its path")
        if prompt_column or model or skip_invalid or max_tokens is not None:
            raise UsageError(
                "--fix does not take --prompt-column, --model, --skip-invalid or a token limit"
            )
    report = BuildReport(output_format, quiet, to_stderr=output == STDOUT)
    with _destination(output) as target:
        if fix:
            fixed = _fix(inputs[0], target, endpoint, limits, force, report)
            if fixed.build is not None and output == STDOUT:
                _copy_to_stdout(fixed.build)
            report.fix(fixed)
        else:
            options = BuildOptions(endpoint, model, prompt_column, system, id_column)
            tokens = _TokenSplit(max_tokens, encoding)
            result = _build(inputs, target, options, limits, tokens, skip_invalid, force, report)
            if output == STDOUT:
                _copy_to_stdout(result)
            report.build(result)


class _TokenSplit(NamedTuple):
    """``--max-tokens-per-file`` (or ``--max-enqueued-tokens``) and ``--encoding``."""

    max_tokens: int | None
    encoding: str | None


def _build(
    inputs: tuple[str, ...],
    output: str,
    options: BuildOptions,
    limits: Limits,
    tokens: _TokenSplit,
    skip_invalid: bool,
    force: bool,
    report: BuildReport,
) -> BuildResult:
    endpoint, requests, items = read_requests(inputs, options, limits)
    try:
        with progress_bar(report.bar, unit=" requests", desc="build") as bar:
            return build_batch(
                requests,
                endpoint=endpoint,
                output=output,
                model=options.model,
                limits=limits,
                on_invalid="skip" if skip_invalid else "raise",
                overwrite=force,
                progress=_updater(bar),
                max_tokens_per_file=tokens.max_tokens,
                encoding=tokens.encoding,
            )
    except InvalidRequestError as error:
        raise InvalidInputError(f"{items.where}: {error}") from None


def _fix(
    path: str,
    output: str,
    endpoint: str | None,
    limits: Limits,
    force: bool,
    report: BuildReport,
) -> FixResult:
    with progress_bar(report.bar, unit=" requests", desc="fix") as bar:
        return fix_file(
            path,
            output=output,
            endpoint=endpoint,
            limits=limits,
            overwrite=force,
            progress=_updater(bar),
        )


# -- -o - -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _destination(output: str) -> Iterator[str]:
    """Where to build: ``output`` itself or, for ``-o -``, a file in a private temporary
    directory, copied to stdout only once the whole build succeeded (so that a failure, or
    requests that need several files, leaves nothing half-written on stdout)."""
    if output != STDOUT:
        yield output
        return
    with tempfile.TemporaryDirectory(prefix="batchkit-") as directory:
        yield os.path.join(directory, "stdout.jsonl")


def _copy_to_stdout(result: BuildResult) -> None:
    if len(result.outputs) > 1:
        counts = ", ".join(f"{count:,}" for count in result.counts)
        raise UsageError(
            f"-o - writes one file, but the requests need {len(result.outputs)} files "
            f"({counts} requests); give a file name instead (-o NAME.jsonl writes "
            "NAME-001.jsonl, NAME-002.jsonl...)"
        )
    stdout = sys.stdout.buffer
    try:
        with result.outputs[0].path.open("rb") as built:
            shutil.copyfileobj(built, stdout)
        stdout.flush()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        fail("stdout was closed before the whole file was written", EXIT_BROKEN_PIPE)


# -- progress -------------------------------------------------------------------------------


def _updater(bar: Any) -> Callable[[int], None] | None:
    if bar is None:
        return None

    def update(handled: int) -> None:
        bar.update(handled - bar.n)

    return update
