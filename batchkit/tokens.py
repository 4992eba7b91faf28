"""Token counts of batch requests: exact, offline, with the provider's own tokenizer.

A batch that fails on the account's enqueued-token limit ("Enqueued token limit reached for
gpt-4o-mini ... Limit: 2,000,000") fails only after its upload; what a batch will cost is the
other question asked before it is sent.  Both need the prompt tokens of every request, counted
token for token as the provider counts them.

The tokenizer is OpenAI's ``tiktoken``.  It downloads its BPE files on first use, which cannot
work offline, so batchkit ships the two it needs (``o200k_base``, ``cl100k_base``: the genuine
files, gzip) in ``batchkit/data/`` and checks each against the sha256 that tiktoken itself
checks before building the encoding from it: the network is never touched.

The rules (the openai-cookbook's "How to count tokens with tiktoken"):

- chat: 3 tokens per message, plus the tokens of each of its values (the role included), plus
  1 for a ``name``, plus 3 that prime the reply;
- embeddings: the tokens of each input (a token array counts its length), no overhead;
- completions: the prompt's tokens.

A count is ``exact`` when every rule it used is (images, tools, audio and the non-text items of
``/v1/responses`` have only estimates) and the model's tokenizer is known; otherwise it is an
estimate that says so.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
import tiktoken

from batchkit.errors import BatchkitError, UsageError
from batchkit.issues import Issue
from batchkit.limits import Limits, Profile
from batchkit.lines import LongLine, open_binary, read_lines

if TYPE_CHECKING:  # validate imports nothing from here; the report type is only named
    from batchkit.validate import FileReport

__all__ = [
    "DEFAULT_ENCODING",
    "ENCODINGS",
    "FileTokens",
    "PromptCounter",
    "RequestTokens",
    "TokenCounter",
    "check_token_limit",
    "count_file_tokens",
    "count_request_tokens",
    "encoding_for_model",
    "get_encoding",
    "resolve_token_limit",
    "token_limit_issue",
    "validate_and_count",
    "with_token_limit",
]


@dataclass(frozen=True)
class _EncodingData:
    """What tiktoken's own constructor (``tiktoken_ext.openai_public``) gives an encoding."""

    file: str
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

#: The encodings batchkit ships, with the hashes tiktoken checks for the same files.  Special
#: tokens matter only for ``decode``: counting uses ``encode_ordinary``, where text that looks
#: like ``<|endoftext|>`` is text.
ENCODINGS: dict[str, _EncodingData] = {
    "o200k_base": _EncodingData(
        "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _EncodingData(
        "cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}
#: The estimate for a model whose tokenizer is unknown: the encoding of OpenAI's current models.
DEFAULT_ENCODING = "o200k_base"


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, built from the BPE file shipped with batchkit.

    The file's sha256 is checked first (the hash tiktoken checks on its own download), so a
    damaged install fails loudly instead of counting wrong.  Built once per process.
    """
    data = ENCODINGS.get(name)
    if data is None:
        raise UsageError(f"unknown encoding {name!r}: choose one of {', '.join(ENCODINGS)}")
    packed = resources.files("batchkit").joinpath("data").joinpath(data.file).read_bytes()
    contents = gzip.decompress(packed)
    if hashlib.sha256(contents).hexdigest() != data.sha256:
        raise BatchkitError(
            f"batchkit's {data.file} is damaged (its sha256 is not {data.sha256}); "
            "reinstall batchkit"
        )
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in contents.splitlines() if line)
    }
    return tiktoken.Encoding(
        name, pat_str=data.pat_str, mergeable_ranks=ranks, special_tokens=data.special_tokens
    )


def encoding_for_model(model: str | None) -> tuple[str, bool]:
    """``(encoding, known)`` for ``model`` by tiktoken's own table; a provider prefix
    (``openai/gpt-4o-mini``) is dropped first.

    ``known`` is false for a model whose tokenizer batchkit does not have (another provider's,
    or an old OpenAI one): then :data:`DEFAULT_ENCODING` (or cl100k_base, for OpenAI's older
    families) gives an estimate.
    """
    if not isinstance(model, str) or not model:
        return DEFAULT_ENCODING, False
    try:
        name = tiktoken.encoding_name_for_model(model.rsplit("/", 1)[-1])
    except KeyError:
        return DEFAULT_ENCODING, False
    if name in ENCODINGS:
        return name, True
    # o200k_harmony (gpt-oss) has o200k's tokens but its own chat format; r50k/p50k are the
    # retired GPT-3 models'.
    return ("o200k_base" if name.startswith("o200k") else "cl100k_base"), False


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestTokens:
    """One request's prompt tokens and the most output tokens it may generate.

    ``max_output`` is ``None`` when the request sets no cap (the model's own maximum applies);
    it is 0 for embeddings, which generate none.
    """

    prompt: int
    max_output: int | None
    encoding: str
    exact: bool


#: The cookbook's overheads: per message, per ``name``, and the reply's priming.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
#: An image's tokens without its size: 85 at ``detail: low``; otherwise a 1024x1024 image at
#: high detail (4 tiles of 170, plus 85).  Only an estimate: the real count needs the size.
IMAGE_LOW_TOKENS = 85
IMAGE_TOKENS = 765
#: The completions endpoint's default ``max_tokens``.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
#: The cache of repeated texts holds texts up to this long, this many characters in all; when
#: full it starts again (a system prompt on every line is back in it at the next line).
CACHE_TEXT_CHARS = 1 << 16
CACHE_TOTAL_CHARS = 1 << 21


class TokenCounter:
    """Counts requests' tokens with one encoding, each repeated text once.

    Real batch files repeat the same system prompt or instructions on every line: a bounded
    cache of counts by text makes those free after the first line.
    """

    def __init__(self, encoding: str, *, exact: bool = True) -> None:
        self.encoding = encoding
        #: False when the encoding is only a guess for the model.
        self.exact_encoding = exact
        self._encode = get_encoding(encoding).encode_ordinary
        self._cache: dict[str, int] = {}
        self._cached_chars = 0

    def text(self, text: str) -> int:
        """The tokens of ``text``, as ``encode_ordinary`` counts them."""
        count = self._cache.get(text)
        if count is None:
            count = len(self._encode(text))
            size = len(text)
            if size <= CACHE_TEXT_CHARS:
                if self._cached_chars + size > CACHE_TOTAL_CHARS:
                    self._cache.clear()
                    self._cached_chars = 0
                self._cache[text] = count
                self._cached_chars += size
        return count

    def request(self, endpoint: str, body: dict[str, Any]) -> RequestTokens:
        """The prompt tokens and the output cap of one request ``body`` to ``endpoint``."""
        rule = _RULES.get(endpoint)
        if rule is None:
            prompt, exact = self._json(body), False
        else:
            prompt, exact = rule(self, body)
        return RequestTokens(
            prompt, _output_cap(endpoint, body), self.encoding, exact and self.exact_encoding
        )

    # -- the values inside a request --------------------------------------------------------

    def _json(self, value: Any) -> int:
        """An estimate for a structure with no documented rule: the tokens of its JSON."""
        try:
            return self.text(orjson.dumps(value).decode())
        except TypeError:
            return 0

    def token_inputs(self, value: Any) -> tuple[int, bool]:
        """An embeddings input or a completions prompt: a string, strings, a token array
        (its length), or token arrays."""
        if isinstance(value, str):
            return self.text(value), True
        if not isinstance(value, list):
            return 0, value is None
        total = 0
        for item in value:
            if isinstance(item, str):
                total += self.text(item)
            elif isinstance(item, list):
                total += len(item)
            elif isinstance(item, int):
                total += 1
        return total, True

    def messages(self, messages: Any, text_parts: frozenset[str]) -> tuple[int, bool]:
        """Chat-style messages by the cookbook's rule, without the reply's priming."""
        if not isinstance(messages, list):
            return 0, False
        total = 0
        exact = True
        for message in messages:
            if not isinstance(message, dict):
                exact = False
                continue
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if type(value) is str:
                    total += self.text(value)
                else:
                    tokens, rule_exact = self._value(value, text_parts)
                    total += tokens
                    exact = exact and rule_exact
                if key == "name":
                    total += TOKENS_PER_NAME
        return total, exact

    def _value(self, value: Any, text_parts: frozenset[str]) -> tuple[int, bool]:
        """A message value that is not a string: content parts, ``null``, or a structure
        (``tool_calls``, ``audio``) that has only an estimate."""
        if value is None:
            return 0, True
        if not isinstance(value, list):
            return self._json(value), False
        total = 0
        exact = True
        for part in value:
            if isinstance(part, dict) and part.get("type") in text_parts:
                text = part.get("text")
                total += self.text(text) if isinstance(text, str) else 0
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                total += _image_tokens(part)
                exact = False
            else:
                total += self._json(part)
                exact = False
        return total, exact


def _image_tokens(part: dict[str, Any]) -> int:
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
    return IMAGE_LOW_TOKENS if detail == "low" else IMAGE_TOKENS


_CHAT_TEXT = frozenset({"text"})
_RESPONSES_TEXT = frozenset({"input_text", "output_text", "text"})


def _chat(counter: TokenCounter, body: dict[str, Any]) -> tuple[int, bool]:
    total, exact = counter.messages(body.get("messages"), _CHAT_TEXT)
    total += REPLY_PRIMING
    for key in ("tools", "functions"):
        if body.get(key):
            total += counter._json(body[key])
            exact = False
    return total, exact


def _responses(counter: TokenCounter, body: dict[str, Any]) -> tuple[int, bool]:
    """``/v1/responses``: ``instructions`` as a system message and ``input`` (a string is one
    user message) by the chat rule; items other than text messages are estimates."""
    messages: list[Any] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    exact = True
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items or []:
        if isinstance(item, dict) and "role" in item and item.get("type", "message") == "message":
            messages.append({key: value for key, value in item.items() if key != "type"})
        else:
            messages.append({"content": [item]})
            exact = False
    total, messages_exact = counter.messages(messages, _RESPONSES_TEXT)
    total += REPLY_PRIMING
    if body.get("tools"):
        total += counter._json(body["tools"])
        exact = False
    return total, exact and messages_exact


def _embeddings(counter: TokenCounter, body: dict[str, Any]) -> tuple[int, bool]:
    return counter.token_inputs(body.get("input"))


def _completions(counter: TokenCounter, body: dict[str, Any]) -> tuple[int, bool]:
    return counter.token_inputs(body.get("prompt"))


_RULES: dict[str, Callable[[TokenCounter, dict[str, Any]], tuple[int, bool]]] = {
    "/v1/chat/completions": _chat,
    "/v1/embeddings": _embeddings,
    "/v1/completions": _completions,
    "/v1/responses": _responses,
}


def _output_cap(endpoint: str, body: dict[str, Any]) -> int | None:
    """The most output tokens the request may be billed for: its cap times its choices."""
    if endpoint == "/v1/embeddings":
        return 0
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        cap = body.get(key)
        if type(cap) is int:
            break
    else:
        if endpoint != "/v1/completions":
            return None
        cap = COMPLETIONS_DEFAULT_MAX_TOKENS
    choices = max(_positive(body.get("n")), _positive(body.get("best_of")))
    return max(cap, 0) * choices


def _positive(value: Any) -> int:
    return value if type(value) is int and value > 0 else 1


@functools.cache
def _shared_counter(encoding: str, exact: bool) -> TokenCounter:
    return TokenCounter(encoding, exact=exact)


def counter_for(model: Any, encoding: str | None = None) -> TokenCounter:
    """A counter for ``model``: ``encoding`` when given (the caller vouches for it), else the
    model's own encoding, or an estimate when the model's tokenizer is unknown."""
    if encoding is not None:
        return _shared_counter(encoding, True)
    name, known = encoding_for_model(model if isinstance(model, str) else None)
    return _shared_counter(name, known)


def count_request_tokens(
    endpoint: str, body: dict[str, Any], *, encoding: str | None = None
) -> RequestTokens:
    """The prompt tokens and output cap of one request ``body`` to ``endpoint``.

    The encoding comes from ``body["model"]`` (``openai/gpt-4o-mini`` counts as
    ``gpt-4o-mini``) unless ``encoding`` names one.  Offline: the BPE data ship with batchkit.
    """
    return counter_for(body.get("model"), encoding).request(endpoint, body)


class PromptCounter:
    """Prompt tokens request after request, with the first request's model's encoding (a
    batch has one model) or the ``encoding`` chosen: what a split by tokens needs."""

    def __init__(self, encoding: str | None = None) -> None:
        if encoding is not None:
            get_encoding(encoding)  # an unknown name is a UsageError before anything is read
        self._encoding = encoding
        self.counter: TokenCounter | None = None

    def __call__(self, endpoint: str, body: dict[str, Any]) -> int:
        return self.request(endpoint, body).prompt

    def request(self, endpoint: str, body: dict[str, Any]) -> RequestTokens:
        if self.counter is None:
            self.counter = counter_for(body.get("model"), self._encoding)
        return self.counter.request(endpoint, body)


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
    }
    if encoding is not None:
        get_encoding(encoding)  # a bad name fails before any work

    def count() -> FileTokens:
        return count_file_tokens(
            path, endpoint=endpoint, encoding=encoding, max_line=chosen.max_bytes
        )

    if (os.cpu_count() or 1) < 2 or os.path.getsize(path) < PARALLEL_BYTES:
        return validate_file(path, **options), count()
    # The worker runs in a session of its own, so that a Ctrl-C at the terminal interrupts
    # this process alone (which then stops the worker) and the worker prints nothing.
    worker = subprocess.Popen(
        [sys.executable, "-c", "from batchkit.tokens import _validate_worker; _validate_worker()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(pickle.dumps((os.fspath(path), options)))
        worker.stdin.close()
        tokens = count()
        outcome = worker.stdout.read()
        worker.wait()
    except BaseException:  # Ctrl-C, SIGTERM, an error: the worker must not outlive this
        worker.kill()
        worker.wait()
        raise
    if worker.returncode != 0 or not outcome:
        raise BatchkitError(f"{path}: the validating worker stopped (exit {worker.returncode})")
    result: FileReport | BaseException = pickle.loads(outcome)
    if isinstance(result, BaseException):
        raise result
    return result, tokens


def _validate_worker() -> None:
    """The second process of :func:`validate_and_count`: the path and options arrive pickled
    on stdin, the report (or the BatchkitError) leaves pickled on stdout."""
    from batchkit.validate import validate_file

    path, options = pickle.loads(sys.stdin.buffer.read())
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
