"""Token counts of whole batch files, and the account's enqueued-token limit.

Built on the per-request counts of :mod:`batchkit.tokens`:

- :func:`count_file_tokens`: a file's prompt tokens and output cap, in one streaming pass of
  its own (counting costs nothing unless it is asked for);
- :func:`validate_and_count`: what ``validate --tokens`` does, the validation in a second
  process beside the count for a large file;
- the limit: :func:`resolve_token_limit` (flag, environment, profile), and the verdict on a
  count (:func:`token_limit_issue`, :func:`check_token_limit`, :func:`with_token_limit`):
  ``token_limit_exceeded``, the provider's own code, or a ``near_limit`` warning at 90%.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from batchkit.errors import BatchkitError, UsageError
from batchkit.issues import Issue
from batchkit.limits import Limits, Profile
from batchkit.lines import LongLine, open_binary, read_lines
from batchkit.tokens import PromptCounter, encoding_for_model, get_encoding

if TYPE_CHECKING:  # validate imports nothing from here; the report type is only named
    from batchkit.validate import FileReport

__all__ = [
    "PARALLEL_BYTES",
    "TOKEN_LIMIT_ENV",
    "TOKEN_LIMIT_EXCEEDED",
    "FileTokens",
    "check_token_limit",
    "count_file_tokens",
    "resolve_token_limit",
    "token_limit_issue",
    "validate_and_count",
    "with_token_limit",
]


# -- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileTokens:
    """A file's prompt tokens and output cap, summed over its requests.

    ``max_output`` is ``None`` when any request has no cap.  ``exact`` is false when any count
    is an estimate (an approximate rule, or a model whose tokenizer is unknown).
    """

    prompt: int
    max_output: int | None
    encoding: str
    exact: bool
    requests: int
    model: str | None

    def to_dict(self) -> dict[str, Any]:
        """The ``tokens`` entry of ``batchkit validate --tokens --format json``."""
        return {
            "prompt": self.prompt,
            "max_output": self.max_output,
            "encoding": self.encoding,
            "exact": self.exact,
        }


def count_file_tokens(
    path: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    encoding: str | None = None,
    max_line: int = Limits.max_bytes,
) -> FileTokens:
    """Count the tokens of every request in the batch file at ``path``, a line at a time.

    Its own streaming pass, apart from validation: counting costs nothing unless asked for.
    Lines that are not requests (not JSON, no body, a line longer than ``max_line``) are
    skipped: the validator reports them.  The first request's model chooses the encoding
    (a batch has one model), unless ``encoding`` names one.
    """
    counting = PromptCounter(encoding)
    model: str | None = None
    prompt = requests = 0
    max_output: int | None = 0
    exact = True
    with open_binary(path) as stream:
        for url, body in _requests(read_lines(stream, max_line), endpoint):
            if not requests:
                model = body.get("model") if isinstance(body.get("model"), str) else None
            tokens = counting.request(url, body)
            requests += 1
            prompt += tokens.prompt
            exact = exact and tokens.exact
            if max_output is not None:
                max_output = None if tokens.max_output is None else max_output + tokens.max_output
    counter = counting.counter
    if counter is None:
        name = encoding or encoding_for_model(None)[0]
        return FileTokens(0, 0, name, encoding is not None, 0, None)
    return FileTokens(prompt, max_output, counter.encoding, exact, requests, model)


def _requests(
    lines: Iterator[bytes | LongLine], endpoint: str | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(url, body)`` of each line that is a request; ``endpoint`` overrides the url."""
    for raw in lines:
        if isinstance(raw, LongLine):
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if type(record) is not dict:
            continue
        body = record.get("body")
        if type(body) is not dict:
            continue
        url = endpoint or record.get("url")
        yield (url if isinstance(url, str) else ""), body


# -- the enqueued-token limit -----------------------------------------------------------------

#: The provider's own code for a batch over the enqueued-token limit.
TOKEN_LIMIT_EXCEEDED = "token_limit_exceeded"


def token_limit_issue(
    prompt_tokens: int, limit: int, *, model: str | None = None, ratio: float = 0.9
) -> Issue | None:
    """The file-level issue for ``prompt_tokens`` against an enqueued-token ``limit``.

    Over the limit: the error ``token_limit_exceeded`` (the provider would refuse the batch
    after its upload).  At ``ratio`` (90%) or more: a ``near_limit`` warning, since the
    provider's own queue figure is an estimate.
    """
    if limit < 1:
        raise UsageError(f"the enqueued-token limit must be positive, got {limit!r}")
    for_model = f" for {model}" if model else ""
    if prompt_tokens > limit:
        return Issue(
            None,
            TOKEN_LIMIT_EXCEEDED,
            None,
            f"the file has {prompt_tokens:,} prompt tokens, over the enqueued-token limit"
            f"{for_model} ({limit:,}); split it (batchkit build --max-tokens-per-file) or "
            "send it once earlier batches have finished",
        )
    if prompt_tokens >= limit * ratio:
        return Issue(
            None,
            "near_limit",
            None,
            f"the file has {prompt_tokens:,} prompt tokens, {prompt_tokens / limit:.1%} of "
            f"the enqueued-token limit{for_model} ({limit:,}); batches already queued "
            "count towards it too",
            severity="warning",
        )
    return None


def check_token_limit(
    path: str | os.PathLike[str],
    limit: int,
    encoding: str | None = None,
    *,
    endpoint: str | None = None,
) -> Issue | None:
    """Count the file at ``path`` and judge it against the enqueued-token ``limit``.

    For ``submit`` and ``run``: ``None`` when the file is well under the limit, else the
    ``token_limit_exceeded`` error or the ``near_limit`` warning (:func:`token_limit_issue`).
    """
    if limit < 1:
        raise UsageError(f"the enqueued-token limit must be positive, got {limit!r}")
    tokens = count_file_tokens(path, endpoint=endpoint, encoding=encoding)
    return token_limit_issue(tokens.prompt, limit, model=tokens.model)


#: The environment variable that sets the enqueued-token limit (below the flag).
TOKEN_LIMIT_ENV = "BATCHKIT_MAX_ENQUEUED_TOKENS"


def resolve_token_limit(given: int | None, profile: Profile) -> int | None:
    """The enqueued-token limit: ``given`` (the flag), else ``BATCHKIT_MAX_ENQUEUED_TOKENS``,
    else the profile's (unset by default); ``None`` when none applies."""
    if given is not None:
        chosen, source = given, "--max-enqueued-tokens"
    elif os.environ.get(TOKEN_LIMIT_ENV, "").strip():
        text = os.environ[TOKEN_LIMIT_ENV].strip()
        try:
            chosen, source = int(text.replace("_", "").replace(",", "")), TOKEN_LIMIT_ENV
        except ValueError:
            raise UsageError(
                f"{TOKEN_LIMIT_ENV}={text!r} is not a number of tokens (e.g. 2000000)"
            ) from None
    elif profile.max_enqueued_tokens is not None:
        chosen, source = profile.max_enqueued_tokens, f"the {profile.name} profile"
    else:
        return None
    if chosen < 1:
        raise UsageError(f"the enqueued-token limit ({source}) must be positive, got {chosen}")
    return chosen


#: Files at least this large are validated in a second process while this one counts: the
#: count (tiktoken) is the long part, and a new interpreter costs a few hundred milliseconds.
PARALLEL_BYTES = 16 * 1024 * 1024
#: What the second process runs.
_WORKER = "from batchkit.token_files import _validate_worker; _validate_worker()"
#: The signals held back while the second process starts.
_HELD = frozenset({signal.SIGINT, signal.SIGTERM})


def validate_and_count(
    path: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    limits: Limits | None = None,
    max_issues: int | None = None,
    encoding: str | None = None,
) -> tuple[FileReport, FileTokens]:
    """``validate_file`` and :func:`count_file_tokens` of one file, as ``validate --tokens``
    does them: side by side on two cores for a large file (the validation in a spawned worker,
    so that nothing of this process's state is copied), one after the other otherwise."""
    from batchkit.validate import DEFAULT_MAX_ISSUES, validate_file

    chosen = limits or Limits()
    options: dict[str, Any] = {
        "endpoint": endpoint,
        "limits": chosen,
        "max_issues": DEFAULT_MAX_ISSUES if max_issues is None else max_issues,
        "jobs": 1,  # the second core counts tokens
    }
    if encoding is not None:
        get_encoding(encoding)  # a bad name fails before any work

    def count() -> FileTokens:
        return count_file_tokens(
            path, endpoint=endpoint, encoding=encoding, max_line=chosen.max_bytes
        )

    if (os.cpu_count() or 1) < 2 or os.path.getsize(path) < PARALLEL_BYTES:
        return validate_file(path, **options), count()
    worker = _start_worker()
    try:
        assert worker.stdin and worker.stdout and worker.stderr
        worker.stdin.write(pickle.dumps((os.fspath(path), options)))
        worker.stdin.close()
        tokens = count()
        outcome = worker.stdout.read()  # written at the end, after anything on stderr
        errors = worker.stderr.read()
        worker.wait()
    except BaseException:  # Ctrl-C, SIGTERM, an error: the worker must not outlive this
        worker.kill()
        worker.wait()
        raise
    if worker.returncode != 0 or not outcome:
        last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise BatchkitError(
            f"{path}: the validating process stopped (exit {worker.returncode}: {last[0]}); "
            "validate without --tokens to see the file's report"
        )
    result: FileReport | BaseException = pickle.loads(outcome)
    if isinstance(result, BaseException):
        raise result
    return result, tokens


def _start_worker() -> subprocess.Popen[bytes]:
    """The second process, in a session of its own, so that a Ctrl-C at the terminal reaches
    this process alone (which then stops the worker).  Ctrl-C and SIGTERM are held back while
    it starts, so that the worker is never left behind by an interrupt that comes before this
    process knows of it; its stderr is kept for the message if it fails."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _validate_worker() -> None:
    """The second process of :func:`validate_and_count`: the path and options arrive pickled
    on stdin, the report (or the BatchkitError) leaves pickled on stdout."""
    from batchkit.validate import validate_file

    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)  # inherited from the parent's start
    request = sys.stdin.buffer.read()
    if not request:  # the parent stopped before it asked: nothing to do
        return
    path, options = pickle.loads(request)
    try:
        result: object = validate_file(path, **options)
    except BatchkitError as error:
        result = error
    sys.stdout.buffer.write(pickle.dumps(result))


def with_token_limit(report: FileReport, tokens: FileTokens, limit: int) -> FileReport:
    """``report`` with the enqueued-token limit's verdict on the file added, when it has one
    (an error over ``limit``, a ``near_limit`` warning at 90%)."""
    issue = token_limit_issue(tokens.prompt, limit, model=tokens.model)
    if issue is None:
        return report
    if issue.severity == "error":
        return dataclasses.replace(
            report, errors=[*report.errors, issue], errors_total=report.errors_total + 1
        )
    return dataclasses.replace(
        report, warnings=[*report.warnings, issue], warnings_total=report.warnings_total + 1
    )
