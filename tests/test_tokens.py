"""batchkit.tokens: exact counts against tiktoken itself, the cookbook's rule, and no network.

The reference is tiktoken's own encoding (its own constructor, pattern and hash check), given
the genuine BPE files through its cache directory, with sockets blocked, so that nothing here
can reach the network either.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
import tiktoken

from batchkit import token_files, tokens
from batchkit.errors import BatchkitError, UsageError
from batchkit.token_files import count_file_tokens
from batchkit.tokens import (
    TokenCounter,
    count_request_tokens,
    encoding_for_model,
    get_encoding,
)
from batchkit.validate import validate_file
from tests.servers.cli import clean_env, explain, json_out, run_batchkit

#: The URLs tiktoken's constructors read (the cache key is their sha1).
_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}

#: The openai-cookbook's example conversation ("How to count tokens with tiktoken").
COOKBOOK_MESSAGES: list[dict[str, str]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise OSError("network blocked by the test")


class _NoSocket(socket.socket):
    """A socket that cannot be made (a class, so that ``ssl`` can still subclass it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("network blocked by the test")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tiktoken.Encoding]]:
    """tiktoken's own encodings, built by tiktoken from the genuine files in its cache."""
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name, url in _URLS.items():
        packed = resources.files("batchkit").joinpath("data").joinpath(f"{name}.tiktoken.gz")
        key = hashlib.sha1(url.encode()).hexdigest()
        (cache / key).write_bytes(gzip.decompress(packed.read_bytes()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        patch.setattr(socket, "socket", _NoSocket)
        patch.setattr(socket, "create_connection", _no_network)
        patch.setattr(socket, "getaddrinfo", _no_network)
        yield {name: tiktoken.get_encoding(name) for name in _URLS}


# -- exactness --------------------------------------------------------------------------------

_CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    'SELECT "id", COUNT(*) FROM t WHERE x >= 10 GROUP BY 1;',
    "const re = /^\\s*(\\d{1,3})\\.(\\d+)$/gi; // regex",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b"}}',
    "<div class='x'>&nbsp;</div>\r\n",
]
_CJK = [
    "東京都の天気は晴れです。",
    "机器学习模型的训练数据",
    "한국어 문장입니다",
    "ｶﾀｶﾅ　全角スペース",
]
_EMOJI = ["👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵🇫🇷", "😀😃😄", "⭐️✨"]
_SPECIAL = ["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|im_start|>", "<| endoftext |>"]
_WORDS = ["Hello", "world", "don't", "WE'LL", "it's", "naïve", "café", "Ωmega", "x²", "1234567"]
_SPACES = [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028"]


def _varied_texts(count: int, seed: int = 12) -> list[str]:
    """Texts mixing code, CJK, emoji, long whitespace runs, special-token lookalikes, digits,
    combining marks and rare code points: the places where ports of tiktoken have differed."""
    rng = random.Random(seed)
    texts = [
        "",
        " " * 1000,
        "\n" * 300 + "x",
        "\t \n" * 200,
        "<|endoftext|>" * 5,
        "a" * 5000,
        "1" * 999,
    ]
    pools = [_CODE, _CJK, _EMOJI, _SPECIAL, _WORDS]
    while len(texts) < count:
        parts: list[str] = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.6:
                parts.append(rng.choice(rng.choice(pools)))
            elif kind < 0.75:
                parts.append(rng.choice(_SPACES) * rng.randint(1, 80))
            elif kind < 0.85:
                parts.append(str(rng.randint(0, 10**12)))
            else:  # any code point but the surrogates
                parts.append(
                    "".join(
                        chr(rng.choice([rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                        for _ in range(rng.randint(1, 6))
                    )
                )
        texts.append(rng.choice(["", " ", "\n"]).join(parts))
    return texts


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_every_token_matches_tiktoken(name: str, reference: dict[str, tiktoken.Encoding]) -> None:
    texts = _varied_texts(1500)
    ours = get_encoding(name)
    counter = TokenCounter(name)
    expected = [reference[name].encode_ordinary(text) for text in texts]
    assert [ours.encode_ordinary(text) for text in texts] == expected
    assert [counter.text(text) for text in texts] == [len(tokens) for tokens in expected]
    # Counted again, from the cache: the same numbers.
    assert [counter.text(text) for text in texts] == [len(tokens) for tokens in expected]


def test_special_token_lookalikes_are_text(reference: dict[str, tiktoken.Encoding]) -> None:
    text = "<|endoftext|> and <|endofprompt|>"
    assert TokenCounter("o200k_base").text(text) == len(
        reference["o200k_base"].encode_ordinary(text)
    )
    assert TokenCounter("o200k_base").text("<|endoftext|>") > 1  # never the one special token


# -- the cookbook's rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "encoding", "expected"),
    [
        ("gpt-4o-mini", "o200k_base", 124),
        ("openai/gpt-4o", "o200k_base", 124),
        ("gpt-4", "cl100k_base", 129),
        ("openai/gpt-3.5-turbo-0125", "cl100k_base", 129),
    ],
)
def test_cookbook_conversation(model: str, encoding: str, expected: int) -> None:
    """The counts the API itself returned for the cookbook's example."""
    counted = count_request_tokens(
        "/v1/chat/completions", {"model": model, "messages": COOKBOOK_MESSAGES}
    )
    assert (counted.prompt, counted.encoding, counted.exact) == (expected, encoding, True)


@pytest.mark.parametrize(
    ("model", "encoding", "known"),
    [
        ("gpt-4.1-mini", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("openai/o1", "o200k_base", True),
        ("text-embedding-3-small", "cl100k_base", True),
        ("openai/text-embedding-ada-002", "cl100k_base", True),
        ("ft:gpt-4o-mini:org::abc", "o200k_base", True),
        ("anthropic/claude-3-5-sonnet", "o200k_base", False),
        ("mistral-large", "o200k_base", False),
    ],
)
def test_encoding_by_model(model: str, encoding: str, known: bool) -> None:
    assert encoding_for_model(model) == (encoding, known)


def _by_hand(encode: tiktoken.Encoding, messages: list[dict[str, str]]) -> int:
    """The cookbook's num_tokens_from_messages, written out."""
    total = 3  # the reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(encode.encode_ordinary(value))
            if key == "name":
                total += 1
    return total


def test_chat_file_total_is_the_cookbook_formula(
    tmp_path: Path, reference: dict[str, tiktoken.Encoding]
) -> None:
    system = {"role": "system", "content": "You answer in one short sentence, in French."}
    conversations = [
        [system, {"role": "user", "content": f"Question {index}: what is {index} squared?"}]
        for index in range(40)
    ]
    conversations.append(COOKBOOK_MESSAGES)
    conversations.append(
        [system, {"role": "user", "name": "bob", "content": "東京 👍🏽 <|endoftext|>"}]
    )
    lines = [
        {
            "custom_id": f"r{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "openai/gpt-4o-mini", "messages": messages, "max_tokens": 50 + index},
        }
        for index, messages in enumerate(conversations)
    ]
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    counted = count_file_tokens(path)
    expected = sum(_by_hand(reference["o200k_base"], messages) for messages in conversations)
    assert counted.prompt == expected
    assert counted.max_output == sum(50 + index for index in range(len(lines)))
    assert (counted.encoding, counted.exact, counted.requests) == ("o200k_base", True, 42)


# -- the other endpoints and the estimates ----------------------------------------------------


def test_embeddings_count_each_input(reference: dict[str, tiktoken.Encoding]) -> None:
    cl100k = reference["cl100k_base"]
    texts = ["first input", "second, longer input with ünïcode"]
    body = {"model": "text-embedding-3-small", "input": texts}
    counted = count_request_tokens("/v1/embeddings", body)
    assert counted.prompt == sum(len(cl100k.encode_ordinary(text)) for text in texts)
    assert (counted.max_output, counted.exact) == (0, True)
    arrays = {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]}
    assert count_request_tokens("/v1/embeddings", arrays).prompt == 5
    one_array = {"model": "text-embedding-3-small", "input": [7, 8, 9, 10]}
    assert count_request_tokens("/v1/embeddings", one_array).prompt == 4


def test_completions_count_the_prompt_and_cap_every_choice(
    reference: dict[str, tiktoken.Encoding],
) -> None:
    prompt = "Once upon a time,"
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": 40, "n": 3}
    counted = count_request_tokens("/v1/completions", body)
    assert counted.prompt == len(reference["cl100k_base"].encode_ordinary(prompt))
    assert (counted.max_output, counted.exact) == (120, True)
    default = count_request_tokens(
        "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"}
    )
    assert default.max_output == 16  # the endpoint's default max_tokens


@pytest.mark.parametrize(
    "body",
    [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                }
            ]
        },
        {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "input_audio", "input_audio": {"data": "AA=="}}],
                }
            ]
        },
    ],
    ids=["image", "tools", "audio"],
)
def test_approximate_rules_are_not_exact(body: dict[str, Any]) -> None:
    counted = count_request_tokens("/v1/chat/completions", {"model": "gpt-4o", **body})
    assert counted.exact is False
    assert counted.prompt > 3


def test_text_parts_are_exact(reference: dict[str, tiktoken.Encoding]) -> None:
    parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two words"}]
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": parts}],
        "max_completion_tokens": 9,
    }
    counted = count_request_tokens("/v1/chat/completions", body)
    o200k = reference["o200k_base"]
    words = len(o200k.encode_ordinary("one")) + len(o200k.encode_ordinary("two words"))
    assert counted.prompt == 3 + 3 + len(o200k.encode_ordinary("user")) + words
    assert (counted.max_output, counted.exact) == (9, True)


def test_responses_text_is_exact_and_other_items_are_not() -> None:
    text = {
        "model": "gpt-4.1",
        "instructions": "Be brief.",
        "input": "Hello",
        "max_output_tokens": 7,
    }
    counted = count_request_tokens("/v1/responses", text)
    assert (counted.exact, counted.max_output) == (True, 7)
    assert counted.prompt == _by_hand(
        get_encoding("o200k_base"),
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    )
    other = {"model": "gpt-4.1", "input": [{"type": "function_call_output", "output": "42"}]}
    assert count_request_tokens("/v1/responses", other).exact is False


def test_unknown_model_is_an_estimate_unless_an_encoding_is_chosen() -> None:
    body = {"model": "anthropic/claude-3-5-haiku", "messages": COOKBOOK_MESSAGES}
    guessed = count_request_tokens("/v1/chat/completions", body)
    assert (guessed.prompt, guessed.encoding, guessed.exact) == (124, "o200k_base", False)
    chosen = count_request_tokens("/v1/chat/completions", body, encoding="cl100k_base")
    assert (chosen.prompt, chosen.encoding, chosen.exact) == (129, "cl100k_base", True)
    with pytest.raises(UsageError, match="unknown encoding 'p50k'"):
        count_request_tokens("/v1/chat/completions", body, encoding="p50k")


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "CACHE_TOTAL_CHARS", 1000)
    counter = TokenCounter("o200k_base")
    system = "You are a careful assistant. " * 5
    first = counter.text(system)
    for index in range(500):
        counter.text(f"distinct text number {index}")
        assert counter._cached_chars <= 1000
        assert len(counter._cache) < 100
    assert counter.text(system) == first


def test_a_damaged_bpe_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = tokens.ENCODINGS["cl100k_base"]
    monkeypatch.setitem(
        tokens.ENCODINGS, "cl100k_base", tokens._EncodingData(data.file, "0" * 64, data.pat_str, {})
    )
    with pytest.raises(BatchkitError, match=r"cl100k_base\.tiktoken\.gz is damaged"):
        get_encoding.__wrapped__("cl100k_base")


# -- offline ----------------------------------------------------------------------------------

_OFFLINE = textwrap.dedent(
    """
    import socket, sys

    class Refused(socket.socket):
        def __init__(self, *args, **kwargs):
            raise OSError("network blocked")

    def refuse(*args, **kwargs):
        raise OSError("network blocked")

    socket.socket = Refused
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    import tiktoken
    try:
        tiktoken.get_encoding("o200k_base")  # tiktoken alone needs the network here
    except Exception as error:
        print("tiktoken alone:", error, file=sys.stderr)
    else:
        raise SystemExit("tiktoken found its BPE file without the network: not a fresh state")
    from batchkit.cli.main import main
    sys.argv = ["batchkit", "validate", "--tokens", "--format", "json", *sys.argv[1:]]
    main()
    """
)


def test_counting_needs_no_network(tmp_path: Path) -> None:
    """A fresh process with an empty tiktoken cache and every socket refused still counts."""
    path = tmp_path / "chat.jsonl"
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "openai/gpt-4o-mini", "messages": COOKBOOK_MESSAGES, "max_tokens": 5},
    }
    path.write_bytes(orjson.dumps(line) + b"\n")
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", _OFFLINE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert completed.returncode == 0, completed.stderr
    assert "tiktoken alone:" in completed.stderr and "network blocked" in completed.stderr
    document = orjson.loads(completed.stdout)
    assert document["files"][0]["tokens"] == {
        "prompt": 124,
        "max_output": 5,
        "encoding": "o200k_base",
        "exact": True,
    }
    assert list(cache.iterdir()) == []


# -- batchkit validate --tokens, --max-enqueued-tokens ----------------------------------------


def _chat_file(path: Path, count: int, *, model: str = "openai/gpt-4o-mini") -> Path:
    system = {"role": "system", "content": "You translate corporate jargon into plain English."}
    lines = [
        {
            "custom_id": f"r{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [system, {"role": "user", "content": f"Synergy number {index}."}],
                "max_tokens": 100,
            },
        }
        for index in range(count)
    ]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def _expected_prompt(count: int) -> int:
    o200k = get_encoding("o200k_base")
    system = {"role": "system", "content": "You translate corporate jargon into plain English."}
    return sum(
        _by_hand(o200k, [system, {"role": "user", "content": f"Synergy number {index}."}])
        for index in range(count)
    )


def test_validate_tokens_json_and_text(tmp_path: Path) -> None:
    path = _chat_file(tmp_path / "chat.jsonl", 30)
    expected = {
        "prompt": _expected_prompt(30),
        "max_output": 3000,
        "encoding": "o200k_base",
        "exact": True,
    }
    completed = run_batchkit("validate", "--tokens", "--format", "json", str(path), env=clean_env())
    assert completed.returncode == 0, explain(completed)
    assert json_out(completed)["files"][0]["tokens"] == expected
    text = run_batchkit("validate", "--tokens", str(path), env=clean_env())
    assert text.returncode == 0, explain(text)
    assert text.stdout.splitlines()[-1] == (
        f"{path}: tokens: {expected['prompt']:,} prompt (o200k_base, exact), output cap 3,000"
    )
    plain = run_batchkit("validate", "--format", "json", str(path), env=clean_env())
    assert "tokens" not in json_out(plain)["files"][0]  # off unless asked for


def test_validate_unknown_model_is_an_estimate_or_the_chosen_encoding(tmp_path: Path) -> None:
    path = _chat_file(tmp_path / "chat.jsonl", 3, model="mistral/mistral-large")
    guessed = run_batchkit("validate", "--tokens", str(path), env=clean_env())
    assert "(o200k_base, estimate)" in guessed.stdout, explain(guessed)
    chosen = run_batchkit(
        "validate",
        "--tokens",
        "--encoding",
        "cl100k_base",
        "--format",
        "json",
        str(path),
        env=clean_env(),
    )
    tokens_entry = json_out(chosen)["files"][0]["tokens"]
    assert (tokens_entry["encoding"], tokens_entry["exact"]) == ("cl100k_base", True)


def test_validate_enqueued_token_limit(tmp_path: Path) -> None:
    path = _chat_file(tmp_path / "chat.jsonl", 20)
    prompt = _expected_prompt(20)

    def validate(limit: int, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_batchkit(
            "validate",
            "--max-enqueued-tokens",
            str(limit),
            "--format",
            "json",
            *extra,
            str(path),
            env=clean_env(),
        )

    over = validate(prompt - 1)
    assert over.returncode == 1, explain(over)
    entry = json_out(over)["files"][0]
    assert [(issue["code"], issue["line"]) for issue in entry["errors"]] == [
        ("token_limit_exceeded", None)
    ]
    assert f"{prompt:,} prompt tokens" in entry["errors"][0]["message"]
    assert entry["tokens"]["prompt"] == prompt
    at_limit = validate(prompt)
    assert at_limit.returncode == 0, explain(at_limit)
    assert [issue["code"] for issue in json_out(at_limit)["files"][0]["warnings"]] == ["near_limit"]
    assert validate(prompt, "--strict").returncode == 1
    under = validate(prompt * 10 // 9 + 1)  # just under 90%
    assert under.returncode == 0 and json_out(under)["files"][0]["warnings"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokens", "--encoding", "p50k_base"], "'p50k_base' is not one of"),
        (["--max-enqueued-tokens", "-5"], "-5 is not in the range"),
        (["--max-enqueued-tokens", "0"], "0 is not in the range"),
        (["--tokens", "-"], "give its path, not -"),
    ],
)
def test_validate_bad_token_options(tmp_path: Path, args: list[str], message: str) -> None:
    path = _chat_file(tmp_path / "chat.jsonl", 1)
    completed = run_batchkit("validate", *args, str(path), env=clean_env())
    assert completed.returncode == 2, explain(completed)
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


# -- batchkit build --max-tokens-per-file ----------------------------------------------------


def _bodies(path: Path, count: int) -> Path:
    rng = random.Random(5)
    bodies = [
        {
            "messages": [
                {
                    "role": "user",
                    "content": " ".join(rng.choices(_WORDS + _CJK, k=rng.randint(1, 60))),
                }
            ]
        }
        for _ in range(count)
    ]
    path.write_bytes(b"".join(orjson.dumps(body) + b"\n" for body in bodies))
    return path


_BUILD = ("--endpoint", "/v1/chat/completions", "--model", "openai/gpt-4o-mini", "--format", "json")


@pytest.mark.parametrize("option", ["--max-tokens-per-file", "--max-enqueued-tokens"])
def test_build_splits_by_prompt_tokens(tmp_path: Path, option: str) -> None:
    source = _bodies(tmp_path / "bodies.jsonl", 300)
    whole = run_batchkit(
        "build", str(source), *_BUILD, "-o", str(tmp_path / "whole.jsonl"), env=clean_env()
    )
    assert whole.returncode == 0, explain(whole)
    total = count_file_tokens(tmp_path / "whole.jsonl").prompt
    limit = total // 5
    out = tmp_path / "split" / "q.jsonl"
    split = run_batchkit(
        "build", str(source), *_BUILD, "-o", str(out), option, str(limit), env=clean_env()
    )
    assert split.returncode == 0, explain(split)
    files = sorted(out.parent.glob("q-*.jsonl"))
    assert len(files) >= 6  # each file under 90% of a fifth
    counts = [count_file_tokens(path) for path in files]
    assert all(0 < counted.prompt < limit * 0.9 for counted in counts)
    assert sum(counted.prompt for counted in counts) == total
    assert sum(counted.requests for counted in counts) == 300
    strict = run_batchkit(
        "validate",
        "--strict",
        "--max-enqueued-tokens",
        str(limit),
        *map(str, files),
        env=clean_env(),
    )
    assert strict.returncode == 0, explain(strict)


def test_build_batch_max_tokens_per_file(tmp_path: Path) -> None:
    from batchkit.build import build_batch

    bodies = [
        {"messages": [{"role": "user", "content": f"question {index} " * 20}]}
        for index in range(50)
    ]
    result = build_batch(
        bodies,
        endpoint="/v1/chat/completions",
        model="gpt-4o",
        output=tmp_path / "q.jsonl",
        max_tokens_per_file=1000,
    )
    counts = [count_file_tokens(output.path).prompt for output in result.outputs]
    assert len(counts) > 1 and max(counts) < 900
    assert sum(counts) == sum(
        count_request_tokens("/v1/chat/completions", {"model": "gpt-4o", **body}).prompt
        for body in bodies
    )


def test_build_refuses_a_request_over_the_token_limit(tmp_path: Path) -> None:
    source = tmp_path / "bodies.jsonl"
    source.write_bytes(
        orjson.dumps({"messages": [{"role": "user", "content": "word " * 500}]}) + b"\n"
    )
    completed = run_batchkit(
        "build",
        str(source),
        *_BUILD,
        "-o",
        str(tmp_path / "q.jsonl"),
        "--max-tokens-per-file",
        "100",
        env=clean_env(),
    )
    assert completed.returncode == 1, explain(completed)
    assert (
        "token_limit_exceeded" in completed.stderr
        and "more than a whole file may hold (100)" in completed.stderr
    )
    assert not (tmp_path / "q.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-tokens-per-file", "-1"], "-1 is not in the range"),
        (["--max-enqueued-tokens", "abc"], "'abc' is not a valid integer"),
        (["--max-tokens-per-file", "10", "--encoding", "gpt2"], "'gpt2' is not one of"),
    ],
)
def test_build_bad_token_options(tmp_path: Path, args: list[str], message: str) -> None:
    source = _bodies(tmp_path / "bodies.jsonl", 2)
    completed = run_batchkit(
        "build", str(source), *_BUILD, "-o", str(tmp_path / "q.jsonl"), *args, env=clean_env()
    )
    assert completed.returncode == 2, explain(completed)
    assert message in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.parametrize("parallel", [True, False], ids=["two-processes", "one-process"])
def test_validate_and_count_gives_what_each_gives_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    """A large file is validated in a second process while this one counts: the report and
    the count are exactly those of validate_file and count_file_tokens, errors included."""
    path = _chat_file(tmp_path / "batch.jsonl", 40)
    with path.open("ab") as out:  # line 41: an error the report must carry over
        out.write(b'{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions"}\n')
    monkeypatch.setattr(token_files, "PARALLEL_BYTES", 0 if parallel else 1 << 40)
    report, counted = token_files.validate_and_count(path)
    assert report == validate_file(path)
    assert [issue.line for issue in report.errors] == [41]
    assert counted == count_file_tokens(path)
    assert counted.prompt == _expected_prompt(40)


CHAT_URL = "/v1/chat/completions"


def test_ctrl_c_during_validate_tokens_stops_both_processes_quietly(tmp_path: Path) -> None:
    """With a large file the validation runs in a worker process of its own session: Ctrl-C
    at the terminal (SIGINT to the foreground group) ends with exit 130, one line, no
    traceback from either process, and no worker left behind."""
    path = tmp_path / "large.jsonl"
    with path.open("wb") as out:
        for index in range(30_000):
            message = {"role": "user", "content": f"hello world {index} " * 60}
            body = {"model": "gpt-4o-mini", "messages": [message]}
            line = {"custom_id": f"r{index}", "method": "POST", "url": CHAT_URL, "body": body}
            out.write(orjson.dumps(line) + b"\n")
    assert path.stat().st_size > token_files.PARALLEL_BYTES
    process = subprocess.Popen(
        [sys.executable, "-m", "batchkit", "validate", "--tokens", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        start_new_session=True,
        text=True,
    )
    watched = psutil.Process(process.pid)
    deadline = time.monotonic() + 60
    while not watched.children() and process.poll() is None:  # the worker has started
        assert time.monotonic() < deadline
        time.sleep(0.02)
    worker = watched.children()
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err == "batchkit: error: interrupted\n"
    _gone, alive = psutil.wait_procs(worker, timeout=10)
    assert not alive
