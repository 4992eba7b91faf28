"""Benchmark: download a 200 MB result file with ``Client.download_file`` from the fake orq API.

Checks the two promises of the streamed download (issue 8, item 1):

* peak RSS while downloading 200 MB stays at most 64 MB, since the body is written to disk
  one 1 MiB chunk at a time;
* the atomic, retrying download costs little against the plainest streamed GET requests can
  do, ``requests.get(url, stream=True)`` with ``iter_content`` into a file, in the same run.

The fake serves the file's bytes in the answer (OpenAI's way, ``file_content = "bytes"``) from a
file on disk.  Each download runs in a fresh subprocess, so that the peak is that download's
alone.  Not part of the test run (pytest collects ``test_*.py``): run it as a script::

    .venv/bin/python tests/benchmarks/bench_download.py [--mb 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from peak_rss import peak_rss_mb
from transfer_report import print_round, report_child, run_child, summarize

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.servers.fake_orq import FakeOrq  # noqa: E402

KEY = "bench-download-key"
_CHUNK = 1024 * 1024


def make_file(path: Path, megabytes: int) -> None:
    """Result lines, about ``megabytes`` MB (10**6 bytes) of them."""
    line = b'{"custom_id":"r%09d","response":{"status_code":200,"body":{"pad":"' + b"x" * 900
    with path.open("wb") as handle:
        for number in range(megabytes * 1_000_000 // (len(line) + 4)):
            handle.write(line % number + b'"}}}\n')


def child(mode: str, url: str, file_id: str, dest: str) -> None:
    """One download in this process; prints seconds and peak RSS as JSON."""
    import requests

    from batchkit.client import Client

    baseline = peak_rss_mb()  # interpreter + imports, before any download
    started = time.perf_counter()
    if mode == "client":
        with Client("orq", base_url=url, api_key=KEY) as client:
            received = client.download_file(file_id, dest)
    else:
        received = 0
        headers = {"Authorization": f"Bearer {KEY}"}
        with (
            requests.get(
                f"{url}/v2/files/{file_id}/content", headers=headers, stream=True, timeout=(10, 60)
            ) as response,
            open(dest, "wb") as handle,
        ):
            response.raise_for_status()
            for chunk in response.iter_content(_CHUNK):
                handle.write(chunk)
                received += len(chunk)
    seconds = time.perf_counter() - started
    report_child(seconds, baseline, peak_rss_mb(), received=received)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the streamed download.")
    parser.add_argument("--mb", type=int, default=200, help="file size in MB (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="downloads of each kind (default 5)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return 0

    with tempfile.TemporaryDirectory() as directory, FakeOrq() as fake:
        source = Path(directory) / "source.jsonl"
        make_file(source, options.mb)
        size = source.stat().st_size

        def read() -> Iterator[bytes]:
            with source.open("rb") as handle:
                yield from iter(lambda: handle.read(_CHUNK), b"")

        fake.state.api_key = KEY
        fake.state.file_content = "bytes"
        stored = fake.state.store_generated("output.jsonl", size, read)
        print(f"file: {size:,} bytes; server: {fake.url}; rounds: {options.rounds}")
        runs: dict[str, list[dict[str, float]]] = {"client": [], "plain": []}
        dest = Path(directory) / "dest.jsonl"
        for round_number in range(options.rounds):
            for mode in ("plain", "client"):  # interleaved, so drift hits both alike
                result = run_child(__file__, mode, fake.url, stored.id, str(dest))
                if result["received"] != size or dest.stat().st_size != size:
                    raise SystemExit(f"{mode}: got {result['received']} of {size} bytes")
                dest.unlink()
                runs[mode].append(result)
                print_round(round_number, mode, result, size)

    return summarize(runs, "Client.download_file", "plain requests.get")


if __name__ == "__main__":
    sys.exit(main())
