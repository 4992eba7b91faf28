"""Reporters: how a :class:`~batchkit.issues.FileReport` is printed.

``text`` for people, ``json`` for programs (the stable document of the README), ``github`` for
workflow-command annotations that mark the exact lines of a pull request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from batchkit.issues import FileReport, Issue

if TYPE_CHECKING:
    from batchkit.token_files import FileTokens

#: Characters that would let text from a file act on the reader's screen or log: C0 and C1
#: controls (a line feed starts a new log line, so a new GitHub annotation; ESC starts a
#: terminal sequence) and the Unicode line and paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``).

    Messages quote the file (a url, a model, a key), so whatever a message holds is printed
    through this: one issue is always one line, and it is shown, never obeyed.
    """
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def issue_line(path: str, issue: Issue) -> str:
    """``path:line: code: message``, the form every command uses for a per-line problem."""
    where = f"{path}:{issue.line}" if issue.line is not None else path
    kind = "warning: " if issue.severity == "warning" else ""
    return printable(f"{where}: {kind}{issue.code}: {issue.message}")


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def summary(report: FileReport) -> str:
    """One line: the verdict, the counts and how close the file is to each limit."""
    limits = report.limits
    shares = [
        f"{report.requests / limits.max_requests:.1%} of {limits.max_requests:,} requests",
        f"{report.bytes / limits.max_bytes:.1%} of {_limit_size(limits.max_bytes)}",
    ]
    if report.embedding_inputs:
        shares.append(
            f"{report.embedding_inputs / limits.max_embedding_inputs:.1%} of "
            f"{limits.max_embedding_inputs:,} embedding inputs"
        )
    verdict = "ok" if report.valid else _count(report.errors_total, "error")
    if report.warnings_total:
        verdict += f", {_count(report.warnings_total, 'warning')}"
    return (
        f"{report.path}: {verdict} in {_count(report.requests, 'request')} "
        f"({human_bytes(report.bytes)}; limits: {', '.join(shares)})"
    )


def tokens_line(path: str, tokens: FileTokens, limit: int | None = None) -> str:
    """``path: tokens: N prompt (encoding, exact), output cap M``, and the share of ``limit``."""
    kind = "exact" if tokens.exact else "estimate"
    cap = "none set" if tokens.max_output is None else f"{tokens.max_output:,}"
    line = f"{path}: tokens: {tokens.prompt:,} prompt ({tokens.encoding}, {kind}), output cap {cap}"
    if limit is not None:
        line += f"; {tokens.prompt / limit:.1%} of the {limit:,} enqueued-token limit"
    return printable(line)


def _limit_size(count: int) -> str:
    """Limits are set in MiB (200 MiB is the provider's own number); small overrides in bytes."""
    mib = count / 2**20
    return f"{mib:,.0f} MiB" if mib >= 1 and mib == int(mib) else f"{count:,} bytes"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def print_text(report: FileReport, *, quiet: bool) -> None:
    issues = report.errors if quiet else _in_line_order(report.errors, report.warnings)
    for issue in issues:
        click.echo(issue_line(report.path, issue))
    hidden = report.errors_total - len(report.errors)
    if not quiet:
        hidden += report.warnings_total - len(report.warnings)
    if hidden:
        click.echo(f"{report.path}: {hidden:,} more not listed (raise --max-errors to see them)")
    if not quiet:
        click.echo(summary(report))


def _in_line_order(errors: Sequence[Issue], warnings: Sequence[Issue]) -> list[Issue]:
    """Per-line issues by line, then the file-level ones."""
    return sorted(
        [*errors, *warnings],
        key=lambda issue: (issue.line is None, issue.line or 0),
    )


def json_document(reports: Iterable[FileReport], strict: bool) -> dict[str, Any]:
    files = [report.to_dict() for report in reports]
    return {"valid": all(_passed(file, strict) for file in files), "files": files}


def _passed(file: dict[str, Any], strict: bool) -> bool:
    return bool(file["valid"]) and not (strict and file["warnings_total"])


def github_escape_data(text: str) -> str:
    """Escaping of a workflow command's message (GitHub's toolkit rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_message(text: str) -> str:
    """A message from the file as annotation data: control characters shown, then escaped."""
    return github_escape_data(printable(text))


def github_escape_property(text: str) -> str:
    """Escaping of a workflow command's property values (file, title)."""
    return github_escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(path: str, issue: Issue) -> str:
    properties = [f"file={github_escape_property(path)}"]
    if issue.line is not None:
        properties.append(f"line={issue.line}")
    properties.append(f"title={github_escape_property(issue.code)}")
    return f"::{issue.severity} {','.join(properties)}::{_github_message(issue.message)}"


def print_github(report: FileReport) -> None:
    for issue in _in_line_order(report.errors, report.warnings):
        click.echo(github_annotation(report.path, issue))
    click.echo(summary(report), err=True)
