"""Benchmark: ``batchkit run`` of 1,000,000 generated chat requests in 20 shards.

Checks the scale promise of issue 9: a job of a million requests runs against a fast local
server with the batchkit process's peak RSS at most 150 MB, however many shards and results
pass through it.  The server is the fake orq API started standalone in a process of its own
(``python -m tests.servers.fake_orq``, keeping the uploads so that it writes every answer), so
its memory is not counted; batchkit runs in a fresh interpreter that reports its own peak
(``VmHWM``, see peak_rss.py).  Prints the peak, the time of each phase and of each shard, from
the job file's events.  Not part of the test run: run it as a script::

    .venv/bin/python tests/benchmarks/bench_run.py [--requests 1000000] [--shards 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import runpy
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from peak_rss import peak_rss_mb
from transfer_report import ROOT

from batchkit.file_limits import fill
from batchkit.limits import Limits

RSS_TARGET_MB = 150.0
#: The fake keeps uploads up to this size (a shard of 50,000 short requests is about 7 MB).
KEEP_UPLOADS_MB = 64
API_KEY = "sk-bench-run-key"


#: One request: a short prompt, so that the count of requests, not their size, is what grows.
LINE = (
    '{{"custom_id":"q{0:07d}","method":"POST","url":"/v1/chat/completions","body":'
    '{{"model":"openai/gpt-4o-mini","messages":[{{"role":"user","content":'
    '"Say something kind about the number {0}."}}],"max_tokens":20}}}}\n'
)


def make_input(path: Path, count: int) -> None:
    """``count`` chat requests with short prompts, written in blocks."""
    with path.open("w") as handle:
        for start in range(0, count, 10_000):
            handle.write("".join(map(LINE.format, range(start, min(start + 10_000, count)))))


def max_requests_for(per_shard: int) -> int:
    """The smallest ``--max-requests`` whose files hold ``per_shard`` requests: a split fills
    each file to just under 90% of the limit (:func:`batchkit.file_limits.fill`)."""
    ratio = Limits().near_limit_ratio
    limit = math.ceil(per_shard / ratio)
    while fill(limit, ratio) < per_shard:
        limit += 1
    return limit


def start_fake() -> tuple[subprocess.Popen[str], str]:
    """The fake orq API in its own process; its URL once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.fake_orq", "--port", "0", "--api-key", API_KEY,
         "--keep-uploads-mb", str(KEEP_UPLOADS_MB)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = process.stdout.readline() if process.stdout else ""
    if "listening on " not in line:
        process.kill()
        raise SystemExit(f"the fake did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


def child(report: str, *arguments: str) -> None:
    """``batchkit ARGUMENTS`` in this process; its exit code, time and peak RSS to ``report``."""
    sys.argv = ["batchkit", *arguments]
    started_at = time.time()  # the clock of the job file's events
    started = time.perf_counter()
    code: int | str | None = 0
    try:
        runpy.run_module("batchkit", run_name="__main__")
    except SystemExit as stop:
        code = stop.code
    seconds = time.perf_counter() - started
    Path(report).write_text(
        json.dumps(
            {
                "exit": code,
                "started_at": started_at,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def run_batchkit(report: Path, *arguments: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ORQ_API_KEY=API_KEY)
    subprocess.run(
        [sys.executable, __file__, "--child", str(report), *arguments], check=False, env=env
    )
    result: dict[str, float] = json.loads(report.read_text())
    return result


def print_timeline(job_file: Path, start: float) -> None:
    """Phases of the job and each shard's path, from the events table (seconds since the
    process started)."""
    with sqlite3.connect(f"{job_file.as_uri()}?mode=ro", uri=True) as db:
        events = db.execute("SELECT at, kind, shard, round FROM events ORDER BY seq").fetchall()
    first = {kind: at for at, kind, _, _ in reversed(events)}
    last = {kind: at for at, kind, _, _ in events}
    print(
        f"  built {first['built'] - start:.1f} s, first upload done "
        f"{first['uploaded'] - start:.1f} s, last collected {last['collected'] - start:.1f} s, "
        f"finished {last['finished'] - start:.1f} s"
    )
    shards: dict[int, dict[str, float]] = defaultdict(dict)
    for at, kind, shard, round_ in events:
        if shard is not None and round_ == 1:
            shards[shard].setdefault(kind, at)
    print("  shard  uploaded  created    ended  collected  (s)   collecting took (s)")
    for shard, times in sorted(shards.items()):
        marks = [times.get(kind, math.nan) - start for kind in
                 ("uploaded", "created", "ended", "collected")]  # fmt: skip
        took = times.get("collected", math.nan) - times.get("ended", math.nan)
        print(f"  {shard:5d}  " + "  ".join(f"{mark:7.1f}" for mark in marks) + f"  {took:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark batchkit run at scale.")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return 0

    max_requests = max_requests_for(math.ceil(options.requests / options.shards))
    fake, url = start_fake()
    try:
        with tempfile.TemporaryDirectory() as directory:
            folder = Path(directory)
            prompts, results = folder / "prompts.jsonl", folder / "results.jsonl"
            make_input(prompts, options.requests)
            print(
                f"input: {options.requests:,} requests, {prompts.stat().st_size / 1e6:.0f} MB; "
                f"--max-requests {max_requests}; fake orq at {url} (pid {fake.pid})"
            )
            result = run_batchkit(
                folder / "report.json", "run", str(prompts), "-o", str(results),
                "--max-requests", str(max_requests), "--base-url", url,
                "--poll-interval", str(options.poll_interval), "-q",
            )  # fmt: skip
            lines = sum(block.count(b"\n") for block in _blocks(results))
            print(
                f"exit {result['exit']}; {result['seconds']:.1f} s in all; "
                f"{lines:,} results ({results.stat().st_size / 1e6:.0f} MB)"
            )
            print_timeline(Path(f"{results}.job.db"), result["started_at"])
            with sqlite3.connect(f"{results}.job.db") as db:
                (shards,) = db.execute("SELECT count(*) FROM shards").fetchone()
            print(f"time per shard: {result['seconds'] / shards:.2f} s ({shards} shards)")
            print(
                f"peak RSS of batchkit run: {result['peak_rss_mb']:.1f} MB "
                f"(target <= {RSS_TARGET_MB:.0f} MB)"
            )
            ok = result["exit"] == 0 and lines == options.requests and shards == options.shards
            return 0 if ok and result["peak_rss_mb"] <= RSS_TARGET_MB else 1
    finally:
        fake.terminate()
        fake.wait()


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


if __name__ == "__main__":
    sys.exit(main())
