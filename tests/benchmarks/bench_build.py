"""Benchmark of build_batch (a script; pytest does not collect it).

    .venv/bin/python tests/benchmarks/bench_build.py [--rounds 5] [--skip-rss]

1. Speed (issue 11's table): 50,000 chat requests, built by ``build_batch`` and by a bare
   loop that only wraps each body in a line (id, url and model filled in), ``orjson.dumps``
   it and writes it; same run, one untimed warm-up of each, then several rounds in
   alternating order; the median ratio is printed in one table with each row's "must".
   Two body sizes: short (about 100 B, the model given as ``model=``: must be at most 1.5x)
   and long (about 4 KB, like the 199 MiB / 50,000-line file of DESIGN.md: at most 1.2x).
2. Escaping U+2028/U+2029/U+0085: ``build_batch`` as it is and with
   ``escape_line_separators`` replaced by a no-op, alternating, on short ASCII bodies and on
   short and long bodies with non-ASCII text (target: no measurable difference, ratio ~1.0).
3. Memory: peak RSS of a fresh process that builds a generator of 1,000,000 requests
   (23 files), compared with the same for 10,000 (target: at most 100 MB).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from peak_rss import peak_rss_mb

from batchkit import build as build_module
from batchkit.build import build_batch

CHAT = "/v1/chat/completions"
MODEL = "openai/gpt-4o-mini"
REQUESTS = 50_000


#: Issue 11's "must" for each speed row: build_batch's time over the bare loop's.
SPEED_TARGETS = {"short": 1.5, "long": 1.2}


def short_bodies(count: int) -> list[dict[str, Any]]:
    """Bodies of about 100 B with no model: the build fills it in, as the bare loop does."""
    return [
        {
            "messages": [{"role": "user", "content": f"Classify ticket {n}: refund not received"}],
            "max_tokens": 5,
        }
        for n in range(count)
    ]


def bodies(count: int, words: int, word: str = "lorem ipsum ") -> list[dict[str, Any]]:
    return [
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Answer briefly and cite your sources."},
                {"role": "user", "content": f"Question {n}: " + word * words},
            ],
            "max_tokens": 200,
            "temperature": 0.2,
        }
        for n in range(count)
    ]


def bare_loop(items: list[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as stream:
        for index, body in enumerate(items):
            line = {
                "custom_id": f"request-{index + 1:06d}",
                "method": "POST",
                "url": CHAT,
                "body": body if "model" in body else {"model": MODEL, **body},
            }
            stream.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def timed(function: Any, *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def alternated(rounds: int, runs: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Each run once untimed (page cache, imports, schema compilation), then ``rounds`` timed
    rounds of all of them, the order reversed every other round, as bench_validate.py does: so
    neither pays for going first, nor for the other's garbage."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for index in range(rounds):
        for name in reversed(order) if index % 2 else order:
            gc.collect()
            times[name].append(timed(runs[name]))
    return times


def speed(rounds: int, kind: str, directory: Path) -> tuple[str, float, float]:
    """One row of the table: (label, median bare loop, median build_batch)."""
    items = short_bodies(REQUESTS) if kind == "short" else bodies(REQUESTS, 330)
    size = len(orjson.dumps(items[0]))
    times = alternated(
        rounds,
        {
            "loop": lambda: bare_loop(items, directory / "loop.jsonl"),
            "build": lambda: build_batch(
                items, endpoint=CHAT, output=directory / "built.jsonl", overwrite=True, model=MODEL
            ),
        },
    )
    loops, builds = times["loop"], times["build"]
    print(
        f"speed, {REQUESTS:,} chat bodies of ~{size:,} B: bare loop "
        + " ".join(f"{t:.3f}" for t in loops)
        + "; build_batch "
        + " ".join(f"{t:.3f}" for t in builds),
        flush=True,
    )
    return (
        f"build_batch, {kind} bodies (~{size:,} B)",
        statistics.median(loops),
        statistics.median(builds),
    )


def table(rows: list[tuple[str, float, float]], rounds: int) -> None:
    print("=" * 78)
    print(f"{'time (median of ' + str(rounds) + ')':<36}{'bare':>9}{'build':>9}{'ratio':>7}  must")
    for (label, bare, built), target in zip(rows, SPEED_TARGETS.values(), strict=True):
        ratio = built / bare
        verdict = "ok" if ratio <= target else "OVER TARGET"
        print(f"{label:<36}{bare:>8.3f}s{built:>8.3f}s{ratio:>7.2f}  <= {target}: {verdict}")
    print("=" * 78, flush=True)


def build_with(
    escape: Callable[[str], str], items: list[dict[str, Any]], directory: Path
) -> Callable[[], None]:
    """A run of build_batch with ``escape`` in place of its line-separator escaping."""
    real = build_module.escape_line_separators

    def run() -> None:
        build_module.escape_line_separators = escape
        try:
            build_batch(items, endpoint=CHAT, output=directory / "built.jsonl", overwrite=True)
        finally:
            build_module.escape_line_separators = real

    return run


def escaping(rounds: int, directory: Path) -> None:
    """The cost of escaping line separators: build_batch with it and with a no-op in its place."""
    real = build_module.escape_line_separators
    cases = [
        ("ASCII", 20, "lorem ipsum "),
        ("non-ASCII", 20, "café naïve "),
        ("non-ASCII", 330, "café naïve "),
    ]
    for label, words, word in cases:
        items = bodies(REQUESTS, words, word)
        size = len(orjson.dumps(items[0]))
        times = alternated(
            rounds,
            {
                "with": build_with(real, items, directory),
                "without": build_with(lambda line: line, items, directory),
            },
        )
        ratios = [a / b for a, b in zip(times["with"], times["without"], strict=True)]
        print(
            f"escaping, {REQUESTS:,} {label} chat requests of ~{size:,} B: with / without "
            f"median ratio {statistics.median(ratios):.3f} (rounds: "
            f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}; 1 warm-up, alternated)"
        )


def rss_child(count: int) -> None:
    """Runs in a fresh process: build ``count`` generated requests, print the peak RSS in MB."""
    with tempfile.TemporaryDirectory() as directory:
        requests = (
            {"messages": [{"role": "user", "content": f"Question {n}: what is {n} squared?"}]}
            for n in range(count)
        )
        start = time.perf_counter()
        result = build_batch(
            requests, endpoint=CHAT, model=MODEL, output=Path(directory) / "m.jsonl"
        )
        took = time.perf_counter() - start
    peak = peak_rss_mb()
    print(f"{peak:.1f} {len(result.files)} {took:.1f}")


def memory() -> None:
    for count in (10_000, 1_000_000):
        output = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(count)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        peak, files, took = float(output[0]), int(output[1]), float(output[2])
        print(
            f"memory, {count:,} generated requests: peak RSS {peak:.1f} MB, "
            f"{files} files, {took:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    with tempfile.TemporaryDirectory() as directory:
        rows = [speed(args.rounds, kind, Path(directory)) for kind in SPEED_TARGETS]
        table(rows, args.rounds)
        escaping(args.rounds, Path(directory))
    if not args.skip_rss:
        memory()


if __name__ == "__main__":
    main()
