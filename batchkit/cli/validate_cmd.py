"""``batchkit validate``: check batch files before they are uploaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from batchkit.cli import report as reporters
from batchkit.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    echo_json,
    format_option,
    handle_errors,
    quiet_option,
)
from batchkit.cli.options import (
    encoding_option,
    endpoint_option,
    limit_options,
    max_enqueued_tokens_option,
    resolve_limits,
)
from batchkit.errors import UsageError
from batchkit.validate import DEFAULT_MAX_ISSUES, FileReport, validate_file

if TYPE_CHECKING:  # the token counter (and tiktoken) is imported only with --tokens
    from batchkit.token_files import FileTokens


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@endpoint_option
@limit_options
@format_option("text", "json", "github")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option(
    "--max-errors",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_ISSUES,
    show_default=True,
    help="List at most N errors (and N warnings) per file; the totals still count them all.",
)
@click.option(
    "--tokens",
    "count_tokens",
    is_flag=True,
    help="Also count each file's prompt tokens and output cap (exact, offline; tiktoken).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Check a large file in N processes at once, with the same report "
    "(default: as many as the cores, up to 4, on a file of 8 MiB or more; 1: one process).",
)
@encoding_option
@max_enqueued_tokens_option
@quiet_option
@handle_errors
def validate(
    paths: tuple[str, ...],
    endpoint: str | None,
    profile: str | None,
    max_requests: int | None,
    max_bytes: int | None,
    max_embedding_inputs: int | None,
    output_format: str,
    strict: bool,
    max_errors: int,
    count_tokens: bool,
    encoding: str | None,
    max_enqueued_tokens: int | None,
    jobs: int | None,
    quiet: bool,
) -> None:
    """Check batch files (FILE, or - for stdin) against every rule, with line numbers.

    Exit 0 when every file is valid, 1 when any is not (or has warnings, with --strict).
    """
    limits = resolve_limits(profile, max_requests, max_bytes, max_embedding_inputs)
    if paths.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    counting = count_tokens or max_enqueued_tokens is not None
    if counting and "-" in paths:
        raise UsageError("--tokens reads a file twice: give its path, not - (stdin)")
    reports: list[FileReport] = []
    counts: list[FileTokens | None] = []
    for path in paths:
        tokens = None
        if counting:
            from batchkit.token_files import validate_and_count, with_token_limit

            report, tokens = validate_and_count(
                path, endpoint=endpoint, limits=limits, max_issues=max_errors, encoding=encoding
            )
            if max_enqueued_tokens is not None:
                report = with_token_limit(report, tokens, max_enqueued_tokens)
        else:
            report = validate_file(
                path, endpoint=endpoint, limits=limits, max_issues=max_errors, jobs=jobs
            )
        reports.append(report)
        counts.append(tokens)
        if output_format == "text":
            reporters.print_text(report, quiet=quiet)
            if tokens is not None and not quiet:
                click.echo(reporters.tokens_line(report.path, tokens, max_enqueued_tokens))
        elif output_format == "github":
            reporters.print_github(report)
            if tokens is not None:
                click.echo(
                    reporters.tokens_line(report.path, tokens, max_enqueued_tokens), err=True
                )
    document = reporters.json_document(reports, strict)
    _add_tokens(document, counts)
    if output_format == "json":
        echo_json(document)
    raise SystemExit(EXIT_OK if document["valid"] else EXIT_INVALID)


def _add_tokens(document: dict[str, Any], counts: list[FileTokens | None]) -> None:
    """Each counted file's entry gets ``tokens`` (the report itself knows nothing of them)."""
    for entry, tokens in zip(document["files"], counts, strict=True):
        if tokens is not None:
            entry["tokens"] = tokens.to_dict()
