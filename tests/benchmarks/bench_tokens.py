"""Benchmark: ``batchkit validate --tokens`` against a bare tiktoken loop, and its peak RSS.

A script, not a test::

    python tests/benchmarks/bench_tokens.py [--rounds N] [--keep]

It writes two chat files of 50,000 lines just under 200 MiB to a temporary directory:

(a) ``repeated``: the same long system prompt (about 3 KB of instructions) on every line, a
    distinct user message after it: what real batch files look like;
(b) ``distinct``: every text distinct (each line's system prompt is its own).

For each, rounds alternating after one untimed warm-up of each, it times:

- the bare loop: read each line, ``orjson.loads`` it, and ``encode_ordinary`` the role and
  content of each message with tiktoken (no cache, nothing else);
- what ``validate --tokens`` does: ``validate_and_count``: ``count_file_tokens`` (its own
  streaming pass, with the cache of repeated texts) while ``validate_file`` runs in a second
  process (for a file this large), on the machine's other core.

and prints the medians and their ratio (targets: (a) <= 1.5x, and the cache should make it
faster than the bare loop; (b) <= 1.2x).  Peak RSS of ``batchkit validate --tokens`` on (a)
and (b), each in a fresh process (target <= 150 MB).  Times are printed, never asserted; only
sanity is (both ways count the same tokens).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bench_validate import _Text, _timed

from batchkit.token_files import validate_and_count
from batchkit.tokens import get_encoding

MIB = 1024 * 1024
LINES = 50_000
TARGET_BYTES = 200 * MIB - 256 * 1024
TARGET_REPEATED = 1.5
TARGET_DISTINCT = 1.2
TARGET_RSS_MB = 150.0
MODEL = "openai/gpt-4o-mini"


def write_file(path: Path, *, repeated: bool, seed: int) -> int:
    """50,000 chat requests of about TARGET_BYTES in all; returns the size.

    Each line gets the bytes still to write shared over the lines left, corrected once for
    the corpus's multi-byte characters, so the total lands just under the limit.
    """
    rng = random.Random(seed)
    text = _Text(rng)
    system = text.take(3000)
    written = 0
    with path.open("wb") as out:
        for index in range(LINES):
            if not repeated:
                system = text.take(3000)
            want = (TARGET_BYTES - written) // (LINES - index)
            user_chars = max(1, want - len(system.encode()) - 220)
            line = _line(index, system, text.take(user_chars))
            miss = want - len(line)
            if abs(miss) > 8 and user_chars + miss > 0:
                line = _line(index, system, text.take(user_chars + miss))
            out.write(line)
            written += len(line)
    return written


def _line(index: int, system: str, user: str) -> bytes:
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": 256,
    }
    record = {
        "custom_id": f"request-{index:06d}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body,
    }
    return orjson.dumps(record) + b"\n"


def bare_loop(path: Path) -> int:
    """The floor: parse each line and encode each message's values with tiktoken."""
    encode = get_encoding("o200k_base").encode_ordinary
    loads = orjson.loads
    total = 0
    with path.open("rb") as stream:
        for line in stream:
            for message in loads(line)["body"]["messages"]:
                total += len(encode(message["role"])) + len(encode(message["content"]))
    return total


def validate_tokens(path: Path) -> int:
    """What ``batchkit validate --tokens`` does for one file (its printing aside)."""
    report, tokens = validate_and_count(path)
    assert report.valid, report.errors[:3]
    return tokens.prompt


def time_pair(path: Path, rounds: int) -> tuple[list[float], list[float], int, int]:
    bare_tokens = bare_loop(path)
    counted = validate_tokens(path)
    bare_times: list[float] = []
    ours: list[float] = []
    for index in range(rounds):
        order: list[tuple[Callable[[Path], Any], list[float]]] = [
            (bare_loop, bare_times),
            (validate_tokens, ours),
        ]
        for func, times in reversed(order) if index % 2 else order:
            times.append(_timed(func, path)[0])
    return bare_times, ours, bare_tokens, counted


_RSS_SNIPPET = r"""
import json, sys
from batchkit.cli.main import cli
try:
    cli(["validate", "--tokens", "--format", "json", sys.argv[1]], prog_name="batchkit")
except SystemExit as exit:
    code = exit.code
for row in open("/proc/self/status"):
    if row.startswith("VmHWM:"):
        print(json.dumps({"exit": code, "vmhwm_kib": int(row.split()[1])}), file=sys.stderr)
"""


def peak_rss(path: Path) -> tuple[float, dict[str, Any]]:
    """Peak RSS (VmHWM, MB) of a fresh ``batchkit validate --tokens`` of ``path``."""
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SNIPPET, str(path)], capture_output=True, text=True, check=False
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["exit"] == 0, done.stderr
    return result["vmhwm_kib"] / 1024, json.loads(done.stdout)["files"][0]["tokens"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-tokens-"))
    try:
        for name, repeated, target in (
            ("repeated", True, TARGET_REPEATED),
            ("distinct", False, TARGET_DISTINCT),
        ):
            path = workdir / f"{name}.jsonl"
            size = write_file(path, repeated=repeated, seed=7)
            bare, ours, bare_tokens, counted = time_pair(path, args.rounds)
            # Same tokens both ways: the file count adds the cookbook's overheads.
            assert counted == bare_tokens + LINES * (2 * 3 + 3), (counted, bare_tokens)
            ratio = statistics.median(ours) / statistics.median(bare)
            rss, tokens = peak_rss(path)
            assert tokens["prompt"] == counted
            print(
                f"({name}) {size / MIB:.1f} MiB, {LINES:,} lines, {counted:,} prompt tokens: "
                f"bare loop {statistics.median(bare):.2f} s, validate --tokens "
                f"{statistics.median(ours):.2f} s, ratio {ratio:.2f} (target <= {target}) "
                f"{'ok' if ratio <= target else 'OVER'}; peak RSS {rss:.1f} MB (target <= "
                f"{TARGET_RSS_MB:.0f}) {'ok' if rss <= TARGET_RSS_MB else 'OVER'}"
            )
            print(f"    rounds: bare {_fmt(bare)}; validate --tokens {_fmt(ours)}")
            if not args.keep:
                path.unlink()
    finally:
        if args.keep:
            print(f"files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in times)


if __name__ == "__main__":
    raise SystemExit(main())
