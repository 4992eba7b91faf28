"""Benchmark of the results join (a script; pytest does not collect it).

    .venv/bin/python tests/benchmarks/bench_results.py [--rounds 5] [--requests 50000]

A generated batch: 50,000 chat requests and an output file of about 200 MB (answers of about
4 KB, shuffled, a tenth of them in the error file as expired).  Timed in one run, alternating,
several rounds, the median reported:

- the bare loop: read both files (input and output) a line at a time and ``orjson.loads``
  every line;
- the join: ``iter_results(output, errors, input)`` to the end (target: at most 2x the bare
  loop);
- and, for scale, the whole of what ``batchkit results`` does after the download:
  ``write_results`` (the join, each result written as JSONL, the summary).
  Then the peak RSS of a fresh process that joins the same
files (target: at most 100 MB), and of one that only imports batchkit, for scale.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from peak_rss import peak_rss_mb

from batchkit.result_files import write_results
from batchkit.results import iter_results

CHAT = "/v1/chat/completions"
MODEL = "openai/gpt-4o-mini"


def generate(directory: Path, count: int) -> tuple[Path, Path, Path]:
    rng = random.Random(1)
    ids = [f"request-{n:06d}" for n in range(1, count + 1)]
    batch_input = directory / "input.jsonl"
    with batch_input.open("wb") as out:
        for custom_id in ids:
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"Q {custom_id}"}]}
            line = {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}
            out.write(orjson.dumps(line) + b"\n")
    shuffled = ids[:]
    rng.shuffle(shuffled)
    output, errors = directory / "output.jsonl", directory / "errors.jsonl"
    text = "lorem ipsum dolor sit amet " * 150  # about 4 KB of answer
    with output.open("wb") as out, errors.open("wb") as err:
        for n, custom_id in enumerate(shuffled):
            if n % 10 == 0:
                record: dict[str, Any] = {
                    "id": f"batch_req_{n}",
                    "custom_id": custom_id,
                    "response": None,
                    "error": {"code": "batch_expired", "message": "not executed"},
                }
                err.write(orjson.dumps(record) + b"\n")
                continue
            body = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 800, "total_tokens": 809},
            }
            record = {
                "id": f"batch_req_{n}",
                "custom_id": custom_id,
                "response": {"status_code": 200, "request_id": f"req_{n}", "body": body},
                "error": None,
            }
            out.write(orjson.dumps(record) + b"\n")
    return batch_input, output, errors


def bare_loop(batch_input: Path, output: Path, errors: Path) -> int:
    count = 0
    for path in (batch_input, output, errors):
        with path.open("rb") as stream:
            for raw in stream:
                orjson.loads(raw)
                count += 1
    return count


def join(batch_input: Path, output: Path, errors: Path) -> int:
    return sum(1 for _ in iter_results(output, errors, input=batch_input))


def write(batch_input: Path, output: Path, errors: Path) -> int:
    dest = output.with_name("results.jsonl")
    summary, _ = write_results(iter_results(output, errors, input=batch_input), dest)
    return summary.total


def timed(func: Any, *args: Any) -> float:
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def child_rss(code: str, *args: str) -> float:
    script = (
        "import sys; sys.path.insert(0, 'tests/benchmarks'); "
        f"{code}; from peak_rss import peak_rss_mb; print(peak_rss_mb())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp), args.requests)
        sizes = ", ".join(f"{path.name} {path.stat().st_size / 2**20:.1f} MiB" for path in files)
        print(f"files: {sizes}")
        base, ours, whole = [], [], []
        for _ in range(args.rounds):
            base.append(timed(bare_loop, *files))
            ours.append(timed(join, *files))
            whole.append(timed(write, *files))
        ratio = statistics.median(o / b for o, b in zip(ours, base, strict=True))
        ratio_whole = statistics.median(w / b for w, b in zip(whole, base, strict=True))
        print(f"bare loop (read + orjson.loads both files): median {statistics.median(base):.3f} s")
        print(f"iter_results with the input: median {statistics.median(ours):.3f} s")
        print(f"ratio (median of per-round ratios): {ratio:.2f}x (target: at most 2x)")
        print(
            f"write_results (join + JSONL + summary): median {statistics.median(whole):.3f} s, "
            f"{ratio_whole:.2f}x the bare loop"
        )
        paths = [str(path) for path in files]
        joined = child_rss(
            "from batchkit.results import iter_results; "
            "from batchkit.result_files import write_results; "
            "write_results(iter_results(sys.argv[2], sys.argv[3], input=sys.argv[1]),"
            " sys.argv[2] + '.results.jsonl')",
            *paths,
        )
        imported = child_rss("import batchkit.results")
        print(
            f"peak RSS: join {joined:.1f} MB (target: at most 100), import alone {imported:.1f} MB"
        )
    print(f"this process: peak RSS {peak_rss_mb():.1f} MB")


if __name__ == "__main__":
    main()
