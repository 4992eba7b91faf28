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

What is counted per request is here; whole files, the enqueued-token limit and counting
beside validation are :mod:`batchkit.token_files`.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from batchkit.errors import BatchkitError, UsageError

if TYPE_CHECKING:  # tiktoken itself is imported when a count needs it, not by every command
    import tiktoken

__all__ = [
    "DEFAULT_ENCODING",
    "ENCODINGS",
    "PromptCounter",
    "RequestTokens",
    "TokenCounter",
    "count_request_tokens",
    "counter_for",
    "encoding_for_model",
    "get_encoding",
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
    import tiktoken

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
    import tiktoken.model

    try:
        name = tiktoken.model.encoding_name_for_model(model.rsplit("/", 1)[-1])
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
