"""How ``batchkit build`` (and ``build --fix``) report: a summary line or a JSON document.

Apart from the command so that the words and the JSON of a build's outcome are in one place.
With ``-o -`` the built file takes stdout, so the report goes to stderr and names the file
``<stdout>`` rather than the temporary it was built in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import orjson

from batchkit.build import BuildResult, describe_request
from batchkit.cli import report as reporters
from batchkit.cli.common import EXIT_INVALID, fail, show_progress
from batchkit.fix import CHANGES, FixResult

#: At most this many warnings are printed; the JSON output has them all (up to 1,000).
_SHOWN_WARNINGS = 20


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """How results are printed: the format, -q, and whether stdout is taken by ``-o -``."""

    output_format: str
    quiet: bool
    to_stderr: bool

    @property
    def bar(self) -> bool:
        return show_progress(self.quiet, self.output_format)

    def echo(self, text: str) -> None:
        click.echo(text, err=self.to_stderr)

    def json(self, document: Any) -> None:
        self.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())

    def shown(self, result: BuildResult) -> BuildResult:
        """``result`` as reported: with ``-o -`` its one file is ``<stdout>``, not a temporary."""
        if not self.to_stderr:
            return result
        outputs = [dataclasses.replace(output, path=Path("<stdout>")) for output in result.outputs]
        return dataclasses.replace(result, outputs=outputs)

    def build(self, result: BuildResult) -> None:
        result = self.shown(result)
        if self.output_format == "json":
            self.json(result.to_dict())
        elif not self.quiet:
            _print_warnings(result)
            self.echo(summary(result))

    def fix(self, fixed: FixResult) -> None:
        if fixed.build is not None:
            fixed = dataclasses.replace(fixed, build=self.shown(fixed.build))
        if self.output_format == "json":
            self.json(fixed.to_dict())
        else:
            for issue in fixed.errors:
                self.echo(reporters.issue_line(fixed.path, issue))
            if not self.quiet:
                for issue in fixed.warnings:
                    self.echo(reporters.issue_line(fixed.path, issue))
                if fixed.changes and fixed.fixed:
                    done = "; ".join(
                        f"{CHANGES[kind]} ({n:,})" for kind, n in fixed.changes.items()
                    )
                    self.echo(f"{fixed.path}: {done}")
                elif fixed.fixed:
                    self.echo(f"{fixed.path}: nothing to repair")
                if fixed.build is not None:
                    self.echo(summary(fixed.build))
        if not fixed.fixed:
            hidden = fixed.errors_total - len(fixed.errors)
            more = f" ({hidden:,} not listed)" if hidden else ""
            count = f"{fixed.errors_total:,} error{'' if fixed.errors_total == 1 else 's'}"
            fail(
                f"{fixed.path}: {count} that --fix cannot repair{more}; nothing was written",
                EXIT_INVALID,
            )


def summary(result: BuildResult) -> str:
    """``wrote 3 files, 120,000 requests, 41.2 MB: out/q-001.jsonl (50,000), ...``."""
    count = len(result.outputs)
    files = ", ".join(f"{output.path} ({output.requests:,})" for output in result.outputs)
    text = (
        f"wrote {count} file{'' if count == 1 else 's'}, {result.requests:,} "
        f"request{'' if result.requests == 1 else 's'}, "
        f"{reporters.human_bytes(result.bytes)}: {files}"
    )
    if result.rejected:
        text += f"; rejected {result.rejected:,} invalid: {result.rejects_file}"
    return text


def _print_warnings(result: BuildResult) -> None:
    for warning in result.warnings[:_SHOWN_WARNINGS]:
        where = describe_request(warning.index, warning.custom_id)
        click.echo(f"warning: {where}: {warning.issue.code}: {warning.issue.message}", err=True)
    hidden = result.warnings_total - min(len(result.warnings), _SHOWN_WARNINGS)
    if hidden:
        click.echo(f"warning: {hidden:,} more (see --format json)", err=True)
