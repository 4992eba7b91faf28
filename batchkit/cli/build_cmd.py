"""``batchkit build``: requests in (JSONL, a JSON array or CSV), valid split batch files out."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
import orjson

from batchkit.build import BuildResult, InvalidRequestError, build_batch, describe_request
from batchkit.cli import report as reporters
from batchkit.cli.common import (
    EXIT_INVALID,
    echo_json,
    fail,
    format_option,
    handle_errors,
    progress_bar,
    quiet_option,
    show_progress,
)
from batchkit.cli.options import endpoint_option, limit_options, resolve_limits
from batchkit.endpoints import ENDPOINTS
from batchkit.errors import InvalidInputError, UsageError
from batchkit.fix import CHANGES, FixResult, fix_file
from batchkit.validate import open_batch_file

#: At most this many warnings are printed; the JSON output has them all (up to 1,000).
_SHOWN_WARNINGS = 20


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output NAME.jsonl; several files become NAME-001.jsonl, NAME-002.jsonl...",
)
@endpoint_option
@click.option("--model", help="Fill a missing body.model with this; a different one is an error.")
@limit_options
@click.option(
    "--prompt-column", help="Read CSV: the column that holds each prompt (one request a row)."
)
@click.option("--system", help="CSV: a system message put before every prompt (chat only).")
@click.option("--id-column", help="CSV: the column that holds each row's custom_id.")
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

    With --fix, repair one batch file instead: strip a byte-order mark, turn \\r\\n into \\n,
    drop blank lines, turn a JSON array into lines, fill missing method, url and custom_id,
    and add a missing /v1 to the url.  What cannot be repaired is listed with its line and
    nothing is written (exit 1).
    """
    limits = resolve_limits(profile, max_requests, max_bytes, max_embedding_inputs)
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    if (system or id_column) and not prompt_column:
        raise UsageError("--system and --id-column need --prompt-column (CSV input)")
    bar_enabled = show_progress(quiet, output_format)
    if fix:
        if len(inputs) != 1 or inputs[0] == "-":
            raise UsageError("--fix repairs one file, given by its path")
        if prompt_column or model or skip_invalid:
            raise UsageError("--fix does not take --prompt-column, --model or --skip-invalid")
        with progress_bar(bar_enabled, unit=" requests", desc="fix") as bar:
            fixed = fix_file(
                inputs[0],
                output=output,
                endpoint=endpoint,
                limits=limits,
                overwrite=force,
                progress=_updater(bar),
            )
        _print_fix(fixed, output_format, quiet)
        return

    items = _Inputs(inputs, prompt_column, system, id_column, endpoint)
    requests: Iterator[Any] = iter(items)
    if endpoint is None:
        endpoint, requests = _infer_endpoint(requests)
    if system and endpoint != "/v1/chat/completions":
        raise UsageError("--system applies to /v1/chat/completions only")
    items.endpoint = endpoint
    try:
        with progress_bar(bar_enabled, unit=" requests", desc="build") as bar:
            result = build_batch(
                requests,
                endpoint=endpoint,
                output=output,
                model=model,
                limits=limits,
                on_invalid="skip" if skip_invalid else "raise",
                overwrite=force,
                progress=_updater(bar),
            )
    except InvalidRequestError as error:
        fail(f"{items.where}: {error}", EXIT_INVALID)
        return
    if output_format == "json":
        echo_json(result.to_dict())
    elif not quiet:
        _print_warnings(result)
        click.echo(summary(result))


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


def _updater(bar: Any) -> Callable[[int], None] | None:
    if bar is None:
        return None

    def update(handled: int) -> None:
        bar.update(handled - bar.n)

    return update


def _infer_endpoint(requests: Iterator[Any]) -> tuple[str, Iterator[Any]]:
    """The endpoint the first request's url names; the requests, that one included."""
    first = next(requests, None)
    url = first.get("url") if isinstance(first, dict) else None
    if url not in ENDPOINTS:
        raise UsageError(
            "--endpoint is required: the first request does not name a batch url "
            f"(choose one of {', '.join(ENDPOINTS)})"
        )
    return str(url), itertools.chain([first], requests)


class _Inputs:
    """The requests of every INPUT in order, one at a time.

    ``where`` is the place (``file:line``) of the request last handed out: the builder works
    on one request at a time, so that is the one an error is about.
    """

    def __init__(
        self,
        paths: tuple[str, ...],
        prompt_column: str | None,
        system: str | None,
        id_column: str | None,
        endpoint: str | None,
    ) -> None:
        self.paths = paths
        self.prompt_column = prompt_column
        self.system = system
        self.id_column = id_column
        self.endpoint = endpoint
        self.where = paths[0]

    def __iter__(self) -> Iterator[Any]:
        for path in self.paths:
            name = "<stdin>" if path == "-" else path
            with _open(path) as stream:
                if self.prompt_column:
                    yield from self._csv(stream, name)
                elif stream.peek(64).lstrip().startswith(b"["):
                    yield from self._array(stream, name)
                else:
                    yield from self._lines(stream, name)

    def _lines(self, stream: IO[bytes], name: str) -> Iterator[Any]:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            self.where = f"{name}:{number}"
            try:
                yield orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise InvalidInputError(
                    f"{self.where}: not valid JSON ({error.msg} at column {error.colno}); "
                    "each line must be one request body or one full request"
                ) from None

    def _array(self, stream: IO[bytes], name: str) -> Iterator[Any]:
        self.where = name
        try:
            document = orjson.loads(stream.read())
        except orjson.JSONDecodeError as error:
            raise InvalidInputError(f"{name}: not valid JSON ({error})") from None
        if not isinstance(document, list):
            raise InvalidInputError(f"{name}: expected a JSON array of requests")
        for number, item in enumerate(document):
            self.where = f"{name}[{number}]"
            yield item

    def _csv(self, stream: IO[bytes], name: str) -> Iterator[Any]:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        columns = reader.fieldnames or []
        for column in (self.prompt_column, self.id_column):
            if column and column not in columns:
                raise UsageError(
                    f"{name}: no column {column!r} (the columns are {', '.join(columns)})"
                )
        for row in reader:
            self.where = f"{name}:{reader.line_num}"
            body = self._body(row[self.prompt_column or ""])
            yield (row[self.id_column], body) if self.id_column else body

    def _body(self, prompt: str | None) -> dict[str, Any]:
        if self.endpoint == "/v1/embeddings":
            return {"input": prompt}
        if self.endpoint == "/v1/completions":
            return {"prompt": prompt}
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": prompt})
        return {"messages": messages}


def _open(path: str) -> contextlib.AbstractContextManager[io.BufferedReader]:
    """The input as a buffered binary stream (``peek`` sniffs a JSON array); stdin stays open."""
    if path == "-":
        stdin: Any = sys.stdin.buffer
        if not isinstance(stdin, io.BufferedReader):
            stdin = io.BufferedReader(stdin)
        return contextlib.nullcontext(stdin)
    return open_batch_file(path)


def _print_warnings(result: BuildResult) -> None:
    for warning in result.warnings[:_SHOWN_WARNINGS]:
        where = describe_request(warning.index, warning.custom_id)
        click.echo(f"warning: {where}: {warning.issue.code}: {warning.issue.message}", err=True)
    hidden = result.warnings_total - min(len(result.warnings), _SHOWN_WARNINGS)
    if hidden:
        click.echo(f"warning: {hidden:,} more (see --format json)", err=True)


def _print_fix(fixed: FixResult, output_format: str, quiet: bool) -> None:
    if output_format == "json":
        echo_json(fixed.to_dict())
    else:
        for issue in fixed.errors:
            click.echo(reporters.issue_line(fixed.path, issue))
        if not quiet:
            for issue in fixed.warnings:
                click.echo(reporters.issue_line(fixed.path, issue))
            if fixed.changes and fixed.fixed:
                done = "; ".join(f"{CHANGES[kind]} ({n:,})" for kind, n in fixed.changes.items())
                click.echo(f"{fixed.path}: {done}")
            elif fixed.fixed:
                click.echo(f"{fixed.path}: nothing to repair")
            if fixed.build is not None:
                click.echo(summary(fixed.build))
    if not fixed.fixed:
        hidden = fixed.errors_total - len(fixed.errors)
        more = f" ({hidden:,} not listed)" if hidden else ""
        count = f"{fixed.errors_total:,} error{'' if fixed.errors_total == 1 else 's'}"
        fail(
            f"{fixed.path}: {count} that --fix cannot repair{more}; nothing was written",
            EXIT_INVALID,
        )
