"""``batchkit validate``: check batch files before they are uploaded."""

from __future__ import annotations

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
from batchkit.cli.options import endpoint_option, limit_options, resolve_limits
from batchkit.errors import UsageError
from batchkit.validate import DEFAULT_MAX_ISSUES, FileReport, validate_file


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
    quiet: bool,
) -> None:
    """Check batch files (FILE, or - for stdin) against every rule, with line numbers.

    Exit 0 when every file is valid, 1 when any is not (or has warnings, with --strict).
    """
    limits = resolve_limits(profile, max_requests, max_bytes, max_embedding_inputs)
    if paths.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    reports: list[FileReport] = []
    for path in paths:
        report = validate_file(path, endpoint=endpoint, limits=limits, max_issues=max_errors)
        reports.append(report)
        if output_format == "text":
            reporters.print_text(report, quiet=quiet)
        elif output_format == "github":
            reporters.print_github(report)
    document = reporters.json_document(reports, strict)
    if output_format == "json":
        echo_json(document)
    raise SystemExit(EXIT_OK if document["valid"] else EXIT_INVALID)
