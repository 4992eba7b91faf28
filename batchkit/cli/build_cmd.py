"""``batchkit build``: requests in (JSONL, a JSON array or CSV), valid split batch files out.

Every input is UTF-8 (a UTF-8 byte-order mark is skipped); UTF-16 is recognised and refused
with the iconv line that converts it.  A line is read with a bound (the file byte limit), so
memory never grows with the longest line.  A bad item (not JSON, not UTF-8, too long, an
empty prompt cell) is handed to the build as an :class:`~batchkit.build.InvalidItem`, so it is
reported with its ``file:line`` or written to the rejects file like any invalid request.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from batchkit.build import (
    BuildResult,
    InvalidItem,
    InvalidRequestError,
    build_batch,
    describe_request,
)
from batchkit.cli import report as reporters
from batchkit.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_INVALID,
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
from batchkit.limits import Limits
from batchkit.lines import LongLine, open_binary, read_lines
from batchkit.validate import UTF8_BOM, UTF16_BOMS, Issue, parse_issue

#: At most this many warnings are printed; the JSON output has them all (up to 1,000).
_SHOWN_WARNINGS = 20
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

    \b
    Each file is filled to just under 90% of every limit (44,999 requests, 180 MiB and
    44,999 embedding inputs with the default limits), so every file passes
    `batchkit validate --strict` and keeps 10% headroom; a single request larger than that
    share gets a file of its own.  U+2028, U+2029 and U+0085 are written escaped.
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
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    if (system or id_column) and not prompt_column:
        raise UsageError("--system and --id-column need --prompt-column (CSV input)")
    if output == STDOUT and skip_invalid:
        raise UsageError("--skip-invalid needs -o NAME.jsonl: the rejects go to NAME.rejects.jsonl")
    if fix:
        if len(inputs) != 1 or inputs[0] == "-":
            raise UsageError("--fix repairs one file, given by its path")
        if prompt_column or model or skip_invalid:
            raise UsageError("--fix does not take --prompt-column, --model or --skip-invalid")
    report = _Report(output_format, quiet, to_stderr=output == STDOUT)
    with _destination(output) as target:
        if fix:
            fixed = _fix(inputs[0], target, endpoint, limits, force, report)
            if fixed.build is not None and output == STDOUT:
                _copy_to_stdout(fixed.build)
            report.fix(fixed)
        else:
            options = _BuildOptions(endpoint, model, prompt_column, system, id_column)
            result = _build(inputs, target, options, limits, skip_invalid, force, report)
            if output == STDOUT:
                _copy_to_stdout(result)
            report.build(result)


@dataclasses.dataclass(frozen=True)
class _BuildOptions:
    """What the request-building options say about the input."""

    endpoint: str | None
    model: str | None
    prompt_column: str | None
    system: str | None
    id_column: str | None


def _build(
    inputs: tuple[str, ...],
    output: str,
    options: _BuildOptions,
    limits: Limits,
    skip_invalid: bool,
    force: bool,
    report: _Report,
) -> BuildResult:
    items = _Inputs(inputs, options, limits)
    requests: Iterator[Any] = iter(items)
    endpoint = options.endpoint
    if endpoint is None:
        endpoint, requests = _infer_endpoint(requests, items)
    if options.system and endpoint != "/v1/chat/completions":
        raise UsageError("--system applies to /v1/chat/completions only")
    items.endpoint = endpoint
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
            )
    except InvalidRequestError as error:
        raise InvalidInputError(f"{items.where}: {error}") from None


def _fix(
    path: str,
    output: str,
    endpoint: str | None,
    limits: Limits,
    force: bool,
    report: _Report,
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


# -- SIGTERM ---------------------------------------------------------------------------------


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


# -- reports --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Report:
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


def _updater(bar: Any) -> Callable[[int], None] | None:
    if bar is None:
        return None

    def update(handled: int) -> None:
        bar.update(handled - bar.n)

    return update


def _infer_endpoint(requests: Iterator[Any], items: _Inputs) -> tuple[str, Iterator[Any]]:
    """The endpoint the first request's url names; the requests, that one included."""
    first = next(requests, None)
    if first is None:
        raise InvalidInputError("the input has no requests; a batch needs one or more")
    if isinstance(first, InvalidItem):  # its own problem comes first, not the missing url
        issue = first.issues[0]
        raise InvalidInputError(f"{items.where}: {issue.code}: {issue.message}")
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

    def __init__(self, paths: tuple[str, ...], options: _BuildOptions, limits: Limits) -> None:
        self.paths = paths
        self.options = options
        self.endpoint = options.endpoint
        #: No line longer than a whole file may hold can become a request: never held whole.
        self.max_line = limits.max_bytes
        self.where = paths[0]

    def __iter__(self) -> Iterator[Any]:
        for path in self.paths:
            name = "<stdin>" if path == "-" else path
            with _open(path) as stream:
                head = stream.peek(64)
                _refuse_utf16(head, name)
                if self.options.prompt_column:
                    yield from self._csv(stream, name)
                    continue
                if head.startswith(UTF8_BOM):
                    stream.read(len(UTF8_BOM))
                    head = head[len(UTF8_BOM) :]
                if head.lstrip().startswith(b"["):
                    yield from self._array(stream, name)
                else:
                    yield from self._lines(stream, name)

    def _lines(self, stream: io.BufferedReader, name: str) -> Iterator[Any]:
        for number, raw in enumerate(read_lines(stream, self.max_line), start=1):
            self.where = f"{name}:{number}"
            if isinstance(raw, LongLine):
                yield _invalid(
                    "file_too_large",
                    f"the line is {raw.length:,} bytes, more than a whole batch file may hold "
                    f"({self.max_line:,} bytes); it was not read",
                )
                continue
            if not raw.strip():
                continue
            try:
                yield orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                yield _not_json(raw, error)

    def _array(self, stream: io.BufferedReader, name: str) -> Iterator[Any]:
        self.where = name
        data = stream.read()
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            bad = _first_bad_byte(data)
            if bad is not None:
                line = data.count(b"\n", 0, bad) + 1
                raise InvalidInputError(f"{name}:{line}: {_NOT_UTF8}") from None
            raise InvalidInputError(f"{name}: not valid JSON ({error})") from None
        if not isinstance(document, list):
            raise InvalidInputError(f"{name}: expected a JSON array of requests")
        for number, item in enumerate(document):
            self.where = f"{name}[{number}]"
            yield item

    def _csv(self, stream: io.BufferedReader, name: str) -> Iterator[Any]:
        # Bad bytes become lone surrogates, found in the cells used, so that the error names
        # the CSV line (a strict decoder fails a chunk ahead, with no line to name).
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.DictReader(text)
        columns = reader.fieldnames
        if not columns:
            raise InvalidInputError(
                f"{name}: the CSV is empty: no header row naming its columns "
                f"(--prompt-column {self.options.prompt_column} needs one)"
            )
        prompt_column = self.options.prompt_column or ""
        id_column = self.options.id_column
        for column in (prompt_column, id_column):
            if column and column not in columns:
                raise UsageError(
                    f"{name}: no column {column!r} (the columns are {', '.join(columns)})"
                )
        for row in reader:
            self.where = f"{name}:{reader.line_num}"
            yield self._csv_item(row, prompt_column, id_column)

    def _csv_item(self, row: dict[str, Any], prompt_column: str, id_column: str | None) -> Any:
        """One CSV row as a request, or the reason it cannot be one."""
        for column in (prompt_column, id_column):
            if column and not _is_utf8(row[column]):
                return _invalid("invalid_encoding", f"column {column!r}: {_NOT_UTF8}")
        prompt = row[prompt_column]
        if prompt is None or not prompt.strip():
            return _invalid(
                "empty_prompt",
                f"the prompt cell (column {prompt_column!r}) is empty; fill it in or remove "
                "the row",
                request=row,
            )
        body = self._body(prompt)
        return (row[id_column], body) if id_column else body

    def _body(self, prompt: str) -> dict[str, Any]:
        if self.endpoint == "/v1/embeddings":
            return {"input": prompt}
        if self.endpoint == "/v1/completions":
            return {"prompt": prompt}
        messages: list[dict[str, Any]] = []
        if self.options.system:
            messages.append({"role": "system", "content": self.options.system})
        messages.append({"role": "user", "content": prompt})
        return {"messages": messages}


_NOT_UTF8 = "bytes that are not UTF-8; save the file as UTF-8"


def _invalid(code: str, message: str, request: Any = None) -> InvalidItem:
    return InvalidItem((Issue(None, code, None, message),), request)


def _not_json(raw: bytes, error: orjson.JSONDecodeError) -> InvalidItem:
    """Why a line is not JSON, in validate's words (bad bytes, NaN, the parser's message)."""
    issue = parse_issue(raw, 0, error)
    kept = raw.decode() if issue.code == "invalid_json_line" else None
    return InvalidItem((dataclasses.replace(issue, line=None),), kept)


def _first_bad_byte(data: bytes) -> int | None:
    """The offset of the first byte of ``data`` that is not UTF-8, if there is one."""
    try:
        data.decode()
    except UnicodeDecodeError as error:
        return error.start
    return None


def _is_utf8(cell: str | None) -> bool:
    """No lone surrogate (a byte the ``surrogateescape`` decoder could not read)."""
    if cell is None or cell.isascii():
        return True
    try:
        cell.encode()
    except UnicodeEncodeError:
        return False
    return True


def _refuse_utf16(head: bytes, name: str) -> None:
    """UTF-16 (by its byte-order mark, or the NUL bytes of its ASCII) is refused, clearly."""
    if head.startswith(UTF16_BOMS):
        how = "it starts with a UTF-16 byte-order mark"
    elif b"\x00" in head:
        how = "it has NUL bytes, as UTF-16 text does"
    else:
        return
    raise InvalidInputError(
        f"{name}: the file is UTF-16 ({how}); batchkit reads UTF-8: convert it "
        f"(e.g. iconv -f UTF-16 -t UTF-8 {name} > converted) and build again"
    )


def _open(path: str) -> contextlib.AbstractContextManager[io.BufferedReader]:
    """The input as a buffered binary stream (``peek`` sniffs a JSON array); stdin stays open."""
    if path == "-":
        stdin: Any = sys.stdin.buffer
        if not isinstance(stdin, io.BufferedReader):
            stdin = io.BufferedReader(stdin)
        return contextlib.nullcontext(stdin)
    return open_binary(path)


def _print_warnings(result: BuildResult) -> None:
    for warning in result.warnings[:_SHOWN_WARNINGS]:
        where = describe_request(warning.index, warning.custom_id)
        click.echo(f"warning: {where}: {warning.issue.code}: {warning.issue.message}", err=True)
    hidden = result.warnings_total - min(len(result.warnings), _SHOWN_WARNINGS)
    if hidden:
        click.echo(f"warning: {hidden:,} more (see --format json)", err=True)
