"""What the two transfer benchmarks (bench_upload.py, bench_download.py) print alike.

Each runs the client and a plain ``requests`` call in turn, one fresh subprocess a run, and
compares their median times and their peak RSS against the 64 MB target.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

#: The repository root, so that a child process imports this checkout's batchkit and tests.
ROOT = Path(__file__).resolve().parents[2]

RSS_TARGET_MB = 64.0

Run = dict[str, float]


def report_child(seconds: float, baseline_mb: float, peak_mb: float, **moved: int) -> None:
    """What a child prints for :func:`run_child` to read: its time, its peaks, the bytes moved."""
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak_mb, "baseline_mb": baseline_mb, **moved}
        )
    )


def run_child(script: str, *args: str) -> Run:
    """Run ``script --child ARGS`` in a fresh interpreter; the JSON it prints."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    output = subprocess.run(
        [sys.executable, script, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: Run = json.loads(output)
    return result


def print_round(round_number: int, mode: str, result: Run, size: int) -> None:
    """One run: its time, its throughput and its peak RSS."""
    print(
        f"  round {round_number + 1} {mode:6s} {result['seconds']:6.2f} s "
        f"{size / result['seconds'] / 1e6:7.1f} MB/s  peak RSS "
        f"{result['peak_rss_mb']:5.1f} MB (imports {result['baseline_mb']:.1f} MB)"
    )


def summarize(runs: dict[str, list[Run]], client_call: str, plain_call: str) -> int:
    """The medians and their ratio, the peaks; exit status 0 when the client's peak is on target."""
    client_s = statistics.median(r["seconds"] for r in runs["client"])
    plain_s = statistics.median(r["seconds"] for r in runs["plain"])
    client_rss = max(r["peak_rss_mb"] for r in runs["client"])
    plain_rss = max(r["peak_rss_mb"] for r in runs["plain"])
    print(
        f"median: {client_call} {client_s:.2f} s, {plain_call} {plain_s:.2f} s, "
        f"ratio {client_s / plain_s:.2f}x"
    )
    print(
        f"peak RSS: {client_call} {client_rss:.1f} MB (target <= {RSS_TARGET_MB:.0f} MB), "
        f"{plain_call} {plain_rss:.1f} MB"
    )
    return 0 if client_rss <= RSS_TARGET_MB else 1
