"""Benchmark: ``validate_file`` against a bare read + ``orjson.loads`` loop, and its peak RSS.

A script, not a test (pytest's default ``python_files = test_*.py`` does not collect
``bench_*.py``)::

    python tests/benchmarks/bench_validate.py [--rounds N] [--keep]

It writes three files to a temporary directory, streaming, one line at a time:

(a) a 50,000-line ``/v1/chat/completions`` file just under 200 MiB, varied valid bodies;
(b) a ``/v1/embeddings`` file holding 50,000 inputs in total (strings, string arrays, token
    arrays);
(c) a 2 MB chat file of the same shape as (a);
(d) a 300 MB file that is one line with no line end (sparse: cheap to write), which must be
    reported without being held (issue 7: it used to take 912 MB);
(e) (a) with an error on every 100th line (a body error, which the slow path explains),
    timed against (a) itself, alternating: target within 2x of (a);
(f) a 50,000-line ``/v1/responses`` file just under 200 MiB: (a)'s requests as Responses
    bodies (a string or messages as ``input``, ``input_text``/``input_image`` parts);
(g) 50,000 short chat lines of about 250 B (one user message, sometimes a system prompt);
(h) 50,000 ``/v1/completions`` lines of about 200 B.

Then, for (a), (g), (b), (h) and (f), it times in the same run, rounds alternating, the bare
loop, ``validate_file`` as a user calls it (a large file in parts, in forked children on
more than one core: batchkit/validate_parts.py) and ``validate_file(jobs=1)`` (one process),
and prints the medians and the ratios to the bare loop; and ``batchkit validate`` as a process
on (a) against ``python -c`` running the bare loop (issue 11's table: each row's "must" is
printed beside it).  Peak RSS is measured for (a), (b), (c), (d), (f), (g), (h) and for a
baseline that only imports batchkit and loads the schemas, each in a fresh subprocess, so that
peaks do not mix (targets: <= 64 MB, and (a) within 10 MB of (c)); the largest
``ru_maxrss`` of its forked children is printed beside it (it counts the pages they share
with it, copied at the fork, as theirs).  Timings are printed, never asserted; only sanity
is asserted (the files have the intended size and counts, and the validator finds them
valid).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

import batchkit
from batchkit.validate import FileReport, validate_file

MIB = 1024 * 1024
CHAT_URL = "/v1/chat/completions"
RESPONSES_URL = "/v1/responses"
EMBEDDINGS_URL = "/v1/embeddings"
CHAT_LINES = 50_000
CHAT_BYTES_MAX = 200 * MIB  # 209,715,200: the provider's limit
CHAT_BYTES_TARGET = CHAT_BYTES_MAX - 96 * 1024  # "just under", whatever the last line does
SMALL_CHAT_BYTES = 2_000_000
ONE_LINE_BYTES = 300_000_000
EMBEDDING_INPUTS = 50_000

#: Issue 11's "must" for each timed row (the ratio to the bare loop); aims are lower.
ROW_TARGETS = {
    "(a) chat 200 MiB, ~4 KB lines": 1.3,
    "(g) chat ~250 B lines": 1.5,
    "(b) embeddings 50k inputs": 1.5,
    "(h) completions ~200 B lines": 1.5,
    "(f) responses 200 MiB": 1.5,
    "batchkit validate (a), process": 1.3,
}
SHORT_LINES = 50_000
#: (e) against (a): the errors' explanations may cost at most this much.
ERRORS_TARGET_RATIO = 2.0
TARGET_RSS_MB = 64.0
TARGET_RSS_DELTA_MB = 10.0

_WORD_TEXT = (
    "the a of to and in that is for it as with was on be by this are from at or an have "
    "not but which they you were their one all we can her has there been if more when will "
    "would who so no out up into do time than them only two may other new some could these "
    "summarize translate explain classify extract rewrite answer customer invoice shipment "
    "refund battery warranty contract clause paragraph sentence table column value report "
    "quarterly revenue growth latency throughput database index query schema migration "
    "kubernetes cluster deployment container image network request response token model "
    "prompt context window embedding vector similarity search ranking relevance document "
    "café naïve résumé Zürich São Paulo Kraków 東京 데이터 données straße"
)
WORDS = _WORD_TEXT.split()
PUNCTUATION = [
    " ",
    " ",
    " ",
    " ",
    " ",
    " ",
    " ",
    " ",
    " ",
    " ",
    ", ",
    ". ",
    "? ",
    ": ",
    "; ",
    " - ",
    '"',
    "\n",
]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a careful analyst. Answer in JSON with the keys 'label' and 'reason'.",
    "You translate technical documents into plain English; keep every number unchanged.",
    "You are a support agent for an online shop. Be brief, polite and precise.",
    "Classify the text into one of: billing, shipping, technical, other. Reply with the label.",
]
MODELS = ["gpt-4o-mini"]  # one model per file: a mixed file is a model_mismatch error


# -- generation ---------------------------------------------------------------------------


def _corpus(rng: random.Random, size: int = 1 << 20) -> str:
    """About ``size`` characters of word salad; slices of it fill the messages."""
    parts: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(WORDS)
        sep = rng.choice(PUNCTUATION)
        parts.append(word)
        parts.append(sep)
        total += len(word) + len(sep)
    return "".join(parts)


class _Text:
    """Cheap varied text: slices of a fixed corpus at random offsets."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.corpus = _corpus(rng)

    def take(self, chars: int) -> str:
        chars = max(1, min(chars, len(self.corpus) - 1))
        start = self.rng.randrange(0, len(self.corpus) - chars)
        text = self.corpus[start : start + chars].strip()
        return text or "hello"


def _chat_body(rng: random.Random, text: _Text, user_chars: int) -> dict[str, Any]:
    """A chat body whose user content is about ``user_chars`` characters long."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
    kind = rng.random()
    if kind < 0.70:
        messages.append({"role": "user", "content": text.take(user_chars)})
    elif kind < 0.85:
        # multi-part text content
        first = max(1, user_chars // 3)
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text.take(first)},
                    {"type": "text", "text": text.take(max(1, user_chars - first))},
                ],
            }
        )
    elif kind < 0.95:
        # text plus an image by URL
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text.take(user_chars)},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": f"https://example.com/images/{rng.randrange(10**9)}.png",
                            "detail": rng.choice(["auto", "low", "high"]),
                        },
                    },
                ],
            }
        )
    else:
        # a short few-shot exchange before the real question
        messages.append({"role": "user", "content": text.take(80)})
        messages.append({"role": "assistant", "content": text.take(60)})
        messages.append({"role": "user", "content": text.take(max(1, user_chars - 140))})
    body: dict[str, Any] = {"model": MODELS[0], "messages": messages}
    if rng.random() < 0.8:
        body["temperature"] = round(rng.uniform(0.0, 1.5), 2)
    if rng.random() < 0.7:
        body["max_tokens"] = rng.choice([64, 128, 256, 512, 1024])
    if rng.random() < 0.1:
        body["top_p"] = round(rng.uniform(0.1, 1.0), 2)
    if rng.random() < 0.05:
        body["response_format"] = {"type": "json_object"}
    return body


def _responses_body(rng: random.Random, text: _Text, user_chars: int) -> dict[str, Any]:
    """A /v1/responses body: the same shapes as :func:`_chat_body`, in the Responses API's
    words (``input``, ``instructions``, ``input_text`` and ``input_image`` parts)."""
    chat = _chat_body(rng, text, user_chars)
    messages = chat["messages"]
    body: dict[str, Any] = {"model": chat["model"], "instructions": messages[0]["content"]}
    turns = messages[1:]
    if len(turns) == 1 and isinstance(turns[0]["content"], str) and rng.random() < 0.5:
        body["input"] = turns[0]["content"]  # a bare string: the simplest request
    else:
        body["input"] = [
            {"role": turn["role"], "content": _input_parts(turn["content"])} for turn in turns
        ]
    if "temperature" in chat:
        body["temperature"] = chat["temperature"]
    if "max_tokens" in chat:
        body["max_output_tokens"] = chat["max_tokens"]
    if "top_p" in chat:
        body["top_p"] = chat["top_p"]
    if "response_format" in chat:
        body["text"] = {"format": chat["response_format"]}
    return body


def _input_parts(content: Any) -> Any:
    """Chat content parts as Responses input parts (a string stays a string)."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part["type"] == "text":
            parts.append({"type": "input_text", "text": part["text"]})
        else:
            image = part["image_url"]
            parts.append(
                {"type": "input_image", "image_url": image["url"], "detail": image["detail"]}
            )
    return parts


def _request_line(custom_id: str, body: dict[str, Any], url: str = CHAT_URL) -> bytes:
    record = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
    return orjson.dumps(record) + b"\n"


def write_chat_file(
    path: Path, lines: int, total_bytes: int, seed: int, *, url: str = CHAT_URL
) -> int:
    """Writes ``lines`` valid requests of about ``total_bytes`` in all; returns the size.

    Chat requests, or with ``url`` ``/v1/responses`` the same requests as Responses bodies.
    Each line gets a share of the bytes still to write, varied by +-60%, so sizes differ but
    the total lands on the target.  Line by line: the generator never holds the file.
    """
    make_body = _responses_body if url == RESPONSES_URL else _chat_body

    def _line(custom_id: str, body: dict[str, Any]) -> bytes:
        return _request_line(custom_id, body, url)

    rng = random.Random(seed)
    text = _Text(rng)
    written = 0
    with path.open("wb") as out:
        for index in range(lines):
            left = lines - index
            share = (total_bytes - written) / left
            want = int(share if left == 1 else share * rng.uniform(0.4, 1.6))
            custom_id = f"request-{index:06d}"
            # Size the user text from the line's overhead, then correct once: escapes
            # ("\n", '"') and multi-byte characters make chars != bytes.
            body = make_body(rng, text, 1)
            overhead = len(_line(custom_id, body))
            user_chars = max(1, want - overhead)
            state = rng.getstate()
            line = _line(custom_id, make_body(rng, text, user_chars))
            miss = want - len(line)
            if abs(miss) > 16 and user_chars + miss > 0:
                rng.setstate(state)
                line = _line(custom_id, make_body(rng, text, user_chars + miss))
            out.write(line)
            written += len(line)
    return written


def write_embeddings_file(path: Path, inputs: int, seed: int) -> tuple[int, int]:
    """Writes requests holding exactly ``inputs`` embedding inputs; returns (bytes, requests)."""
    rng = random.Random(seed)
    text = _Text(rng)
    written = requests = left = 0
    left = inputs
    with path.open("wb") as out:
        while left:
            kind = rng.random()
            body: dict[str, Any] = {"model": "text-embedding-3-small"}
            if kind < 0.35 or left == 1:
                body["input"] = text.take(rng.randrange(40, 600))  # one string: 1 input
                count = 1
            elif kind < 0.80:
                count = min(left, rng.choice([2, 2, 3, 4]))  # array of strings
                body["input"] = [text.take(rng.randrange(20, 300)) for _ in range(count)]
            elif kind < 0.90:
                body["input"] = [rng.randrange(100_000) for _ in range(rng.randrange(5, 60))]
                count = 1  # one token array
            else:
                count = min(left, 2)  # token arrays
                body["input"] = [
                    [rng.randrange(100_000) for _ in range(rng.randrange(5, 40))]
                    for _ in range(count)
                ]
            if rng.random() < 0.3:
                body["encoding_format"] = "float"
            if rng.random() < 0.1:
                body["dimensions"] = 512
            record = {
                "custom_id": f"emb-{requests:06d}",
                "method": "POST",
                "url": EMBEDDINGS_URL,
                "body": body,
            }
            line = orjson.dumps(record) + b"\n"
            out.write(line)
            written += len(line)
            requests += 1
            left -= count
    return written, requests


def write_short_file(path: Path, seed: int, *, url: str = CHAT_URL) -> int:
    """50,000 short requests: chat (~250 B a line) or, for /v1/completions, prompts (~200 B)."""
    rng = random.Random(seed)
    text = _Text(rng)
    written = 0
    with path.open("wb") as out:
        for index in range(SHORT_LINES):
            body: dict[str, Any] = {"model": MODELS[0]}
            if url == CHAT_URL:
                messages = [{"role": "user", "content": text.take(rng.randrange(40, 170))}]
                if rng.random() < 0.3:
                    messages.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
                body["messages"] = messages
            else:
                body["prompt"] = text.take(rng.randrange(50, 140))
            if rng.random() < 0.5:
                body["max_tokens"] = rng.choice([16, 32, 64, 128])
            if rng.random() < 0.5:
                body["temperature"] = round(rng.uniform(0.0, 1.0), 2)
            line = _request_line(f"request-{index:06d}", body, url)
            out.write(line)
            written += len(line)
    return written


# -- timing -------------------------------------------------------------------------------


#: One line in this many is broken in the file with errors: its first message's role misspelled,
#: a body error that the validator's slow path must explain (jsonschema's best match, a path).
ERROR_EVERY = 100


def write_with_errors(source: Path, target: Path, every: int = ERROR_EVERY) -> int:
    """``source`` with every ``every``-th line broken; returns how many lines were."""
    broken = 0
    with source.open("rb") as lines, target.open("wb") as out:
        for number, line in enumerate(lines, start=1):
            if number % every == 0:
                line = line.replace(b'"role":"', b'"role":"x', 1)
                broken += 1
            out.write(line)
    return broken


def time_both(first: Path, second: Path, rounds: int) -> tuple[list[float], list[float]]:
    """validate_file on two files, alternated (order swapped every round) after a warm-up."""
    run_validate(first)
    run_validate(second)
    times: tuple[list[float], list[float]] = ([], [])
    for index in range(rounds):
        pairs = [(first, times[0]), (second, times[1])]
        for path, into in reversed(pairs) if index % 2 else pairs:
            into.append(_timed(run_validate, path)[0])
    return times


def bare_loop(path: Path) -> int:
    """The floor: read the file in binary line by line and parse each line."""
    count = 0
    loads = orjson.loads
    with path.open("rb") as stream:
        for line in stream:
            loads(line)
            count += 1
    return count


def run_validate(path: Path) -> FileReport:
    return validate_file(path)


def run_one_process(path: Path) -> FileReport:
    """``validate_file`` kept to this process (``jobs=1``): the per-line work alone."""
    return validate_file(path, jobs=1)


_BARE_SNIPPET = """
import sys, orjson
loads = orjson.loads
with open(sys.argv[1], "rb") as stream:
    for line in stream:
        loads(line)
"""


def time_processes(path: Path, rounds: int) -> tuple[list[float], list[float]]:
    """``python -c`` running the bare loop, and ``python -m batchkit validate``, as processes:
    each once untimed, then alternated (order swapped every round)."""
    runs = {
        "bare": [sys.executable, "-c", _BARE_SNIPPET, str(path)],
        "validate": [sys.executable, "-m", "batchkit", "validate", "--quiet", str(path)],
    }

    def run(argv: list[str]) -> float:
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{argv[1:4]} failed ({done.returncode}): {done.stderr[-500:]!r}")
        return elapsed

    for argv in runs.values():
        run(argv)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for index in range(rounds):
        for name in reversed(list(runs)) if index % 2 else list(runs):
            times[name].append(run(runs[name]))
    return times["bare"], times["validate"]


def _timed(func: Callable[[Path], Any], path: Path) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = func(path)
    return time.perf_counter() - start, result


def time_pair(path: Path, rounds: int) -> tuple[list[float], list[float], list[float], Any]:
    """The bare loop, ``validate_file`` and ``validate_file(jobs=1)``, alternated (the order
    turned every round) after one untimed warm-up of each."""
    bare_loop(path)
    report = run_validate(path)  # warm-up: page cache, schema compilation
    run_one_process(path)
    times: dict[Callable[[Path], Any], list[float]] = {
        bare_loop: [],
        run_validate: [],
        run_one_process: [],
    }
    for index in range(rounds):
        order = list(times)
        order = order[index % 3 :] + order[: index % 3]
        for func in order:
            elapsed, result = _timed(func, path)
            times[func].append(elapsed)
            if func is run_validate:
                report = result
        del result
    return times[bare_loop], times[run_validate], times[run_one_process], report


# -- memory -------------------------------------------------------------------------------

_RSS_SNIPPET = r"""
import json, resource, sys
import batchkit
from batchkit import schemas
from batchkit.endpoints import ENDPOINTS
for endpoint in ENDPOINTS.values():
    schemas.load_schema(endpoint.schema)
    schemas.is_valid(endpoint.schema, {})  # builds the fast validator
result = {}
if len(sys.argv) > 1:
    report = batchkit.validate_file(sys.argv[1])
    result = {"valid": report.valid, "requests": report.requests,
              "errors_total": report.errors_total,
              "codes": sorted({issue.code for issue in report.errors})}
result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result["children_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
try:
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith("VmHWM:"):
                result["vmhwm_kib"] = int(row.split()[1])
except OSError:
    pass
print(json.dumps(result))
"""


def peak_rss(path: Path | None) -> dict[str, Any]:
    """Peak RSS of a fresh interpreter that validates ``path`` (or only loads, if None).

    The peak is the child's ``VmHWM`` (Linux), not its ``ru_maxrss``: the kernel carries the
    high-water mark of the memory image a process replaces at ``exec`` into ``ru_maxrss``, and
    ``subprocess`` forks (vforks) from this benchmark process, so a child's ``ru_maxrss`` is
    at least this process's own peak and every figure would come out the same.  ``VmHWM``
    belongs to the new image only.  Elsewhere ``ru_maxrss`` is the fallback.
    """
    argv = [sys.executable, "-c", _RSS_SNIPPET]
    if path is not None:
        argv.append(str(path))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"RSS subprocess failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    peak_kib = result.get("vmhwm_kib", result["maxrss_kib"])  # ru_maxrss: KiB on Linux
    result["mb"] = peak_kib / 1024
    result["maxrss_mb"] = result["maxrss_kib"] / 1024
    result["children_mb"] = result["children_kib"] / 1024
    return result


# -- main ---------------------------------------------------------------------------------


def _fmt_size(size: int) -> str:
    return f"{size:,} B ({size / MIB:.2f} MiB)"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER TARGET"


def _check_report(report: Any, path: Path, requests: int) -> None:
    assert report.valid, (
        f"{path.name}: the validator found the generated file invalid: "
        f"{[issue.to_dict() for issue in report.errors[:5]]}"
    )
    assert report.requests == requests, (path.name, report.requests, requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="batchkit-bench-", dir=args.dir))
    try:
        return _run(workdir, args.rounds)
    finally:
        if args.keep:
            print(f"\nkept the files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(workdir: Path, rounds: int) -> int:
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, orjson "
        f"{orjson.__version__}, jsonschema_rs {version('jsonschema_rs')}, "
        f"batchkit {batchkit.__version__}"
    )
    print(f"writing to {workdir}", flush=True)

    chat = workdir / "chat_200mib.jsonl"
    embeddings = workdir / "embeddings_50k_inputs.jsonl"
    small = workdir / "chat_2mb.jsonl"
    one_line = workdir / "one_line_300mb.jsonl"
    responses = workdir / "responses_200mib.jsonl"
    short_chat = workdir / "chat_250b.jsonl"
    completions = workdir / "completions_200b.jsonl"

    start = time.perf_counter()
    chat_size = write_chat_file(chat, CHAT_LINES, CHAT_BYTES_TARGET, seed=1)
    emb_size, emb_requests = write_embeddings_file(embeddings, EMBEDDING_INPUTS, seed=2)
    small_lines = max(1, round(CHAT_LINES * SMALL_CHAT_BYTES / CHAT_BYTES_TARGET))
    small_size = write_chat_file(small, small_lines, SMALL_CHAT_BYTES, seed=3)
    with one_line.open("wb") as stream:
        stream.truncate(ONE_LINE_BYTES)
    responses_size = write_chat_file(
        responses, CHAT_LINES, CHAT_BYTES_TARGET, seed=4, url=RESPONSES_URL
    )
    short_size = write_short_file(short_chat, seed=5)
    completions_size = write_short_file(completions, seed=6, url="/v1/completions")
    print(f"generated in {time.perf_counter() - start:.1f} s")
    print(f"  (a) {chat.name}: {CHAT_LINES:,} lines, {_fmt_size(chat_size)}")
    print(f"  (b) {embeddings.name}: {emb_requests:,} lines, {_fmt_size(emb_size)}")
    print(f"  (c) {small.name}: {small_lines:,} lines, {_fmt_size(small_size)}")
    print(f"  (d) {one_line.name}: 1 line, {_fmt_size(ONE_LINE_BYTES)}, no line end")
    print(f"  (f) {responses.name}: {CHAT_LINES:,} lines, {_fmt_size(responses_size)}")
    print(f"  (g) {short_chat.name}: {SHORT_LINES:,} lines, {_fmt_size(short_size)}")
    print(f"  (h) {completions.name}: {SHORT_LINES:,} lines, {_fmt_size(completions_size)}")
    sys.stdout.flush()
    assert 199 * MIB < responses_size <= 200 * MIB, f"(f) is {responses_size:,} bytes"
    assert chat_size == chat.stat().st_size
    assert 199 * MIB < chat_size <= 200 * MIB, f"(a) is {chat_size:,} bytes"
    assert 1_900_000 <= small_size <= 2_100_000, f"(c) is {small_size:,} bytes"

    # -- time ------------------------------------------------------------------------------
    timing: dict[str, tuple[float, float]] = {}
    one_process: dict[str, float] = {}
    for label, path, requests in (
        ("(a) chat 200 MiB, ~4 KB lines", chat, CHAT_LINES),
        ("(g) chat ~250 B lines", short_chat, SHORT_LINES),
        ("(b) embeddings 50k inputs", embeddings, emb_requests),
        ("(h) completions ~200 B lines", completions, SHORT_LINES),
        ("(f) responses 200 MiB", responses, CHAT_LINES),
    ):
        print(f"\ntiming {label}: {rounds} rounds + 1 warm-up ...", flush=True)
        bare_times, validate_times, one_times, report = time_pair(path, rounds)
        _check_report(report, path, requests)
        if path is embeddings:
            assert report.embedding_inputs == EMBEDDING_INPUTS, report.embedding_inputs
        bare_med = statistics.median(bare_times)
        val_med = statistics.median(validate_times)
        timing[label] = (bare_med, val_med)
        one_process[label] = statistics.median(one_times)
        print("  bare    : " + " ".join(f"{t:.3f}" for t in bare_times))
        print("  validate: " + " ".join(f"{t:.3f}" for t in validate_times))
        print("  jobs=1  : " + " ".join(f"{t:.3f}" for t in one_times))
        print(
            f"  median bare {bare_med:.3f} s, validate {val_med:.3f} s, "
            f"ratio {val_med / bare_med:.2f}",
            flush=True,
        )
        del report
        gc.collect()

    label = "batchkit validate (a), process"
    print(f"\ntiming {label}: {rounds} rounds + 1 warm-up ...", flush=True)
    bare_times, validate_times = time_processes(chat, rounds)
    print("  python -c bare : " + " ".join(f"{t:.3f}" for t in bare_times))
    print("  batchkit       : " + " ".join(f"{t:.3f}" for t in validate_times))
    timing[label] = (statistics.median(bare_times), statistics.median(validate_times))

    # -- a file with errors: the slow path that explains them -----------------------------
    with_errors = workdir / "chat_200mib_errors.jsonl"
    broken = write_with_errors(chat, with_errors)
    report = run_validate(with_errors)
    assert report.errors_total == broken, (report.errors_total, broken)
    del report
    print(
        f"\ntiming (e) {with_errors.name}: an error on every {ERROR_EVERY}th line ...", flush=True
    )
    clean_times, error_times = time_both(chat, with_errors, rounds)
    clean_med, error_med = statistics.median(clean_times), statistics.median(error_times)
    print("  without errors: " + " ".join(f"{t:.3f}" for t in clean_times))
    print("  with errors   : " + " ".join(f"{t:.3f}" for t in error_times))
    errors_ratio = error_med / clean_med
    with_errors.unlink()
    gc.collect()

    # -- memory ----------------------------------------------------------------------------
    print("\npeak RSS, each in a fresh subprocess ...", flush=True)
    rss: dict[str, dict[str, Any]] = {"baseline (import + schemas)": peak_rss(None)}
    for label, path, requests in (
        ("(a) chat 200 MiB", chat, CHAT_LINES),
        ("(b) embeddings 50k inputs", embeddings, emb_requests),
        ("(c) chat 2 MB", small, small_lines),
        ("(f) responses 200 MiB", responses, CHAT_LINES),
        ("(g) chat ~250 B lines", short_chat, SHORT_LINES),
        ("(h) completions ~200 B lines", completions, SHORT_LINES),
    ):
        result = peak_rss(path)
        assert result["valid"] and result["requests"] == requests, (label, result)
        rss[label] = result
    result = peak_rss(one_line)
    assert result["codes"] == ["file_too_large"] and result["requests"] == 1, result
    rss["(d) one 300 MB line"] = result

    # -- table -----------------------------------------------------------------------------
    print("\n" + "=" * 78)
    print(
        f"{'time (median of ' + str(rounds) + ')':<32}{'bare':>9}{'validate':>10}{'ratio':>7}"
        f"  must{'':<16}jobs=1"
    )
    for label, (bare_med, val_med) in timing.items():
        ratio = val_med / bare_med
        target = ROW_TARGETS[label]
        alone = f"{one_process[label] / bare_med:.2f}" if label in one_process else "-"
        print(
            f"{label:<32}{bare_med:>8.3f}s{val_med:>9.3f}s{ratio:>7.2f}  <= {target}: "
            f"{_verdict(ratio <= target):<13}{alone:>6}"
        )
    print("-" * 78)
    base_mb = rss["baseline (import + schemas)"]["mb"]
    print(
        f"{'peak RSS (VmHWM)':<30}{'MB':>10}{'- baseline':>11}  "
        f"{'target <= ' + format(TARGET_RSS_MB, '.0f') + ' MB':<20}(ru_maxrss) child"
    )
    for label, result in rss.items():
        ok = result["mb"] <= TARGET_RSS_MB
        child = f"{result['children_mb']:.1f}" if result["children_kib"] else "-"
        print(
            f"{label:<30}{result['mb']:>10.1f}{result['mb'] - base_mb:>11.1f}  "
            f"{_verdict(ok):<20}({result['maxrss_mb']:.1f}){child:>8}"
        )
    print("-" * 78)
    print(
        f"{'(e) = (a) + error every ' + str(ERROR_EVERY) + 'th':<30}{clean_med:>9.3f}s"
        f"{error_med:>10.3f}s{errors_ratio:>8.2f}  target <= {ERRORS_TARGET_RATIO}: "
        f"{_verdict(errors_ratio <= ERRORS_TARGET_RATIO)} (without / with errors)"
    )
    delta = rss["(a) chat 200 MiB"]["mb"] - rss["(c) chat 2 MB"]["mb"]
    print(
        f"{'(a) - (c)':<30}{delta:>10.1f}{'':>11}  target <= {TARGET_RSS_DELTA_MB:.0f} MB: "
        f"{_verdict(delta <= TARGET_RSS_DELTA_MB)}"
    )
    print("=" * 78)
    print("(MB = 2**20 bytes; timings are printed, not asserted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
