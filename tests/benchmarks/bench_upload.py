"""Benchmark: upload a 200 MB batch file with ``Client.upload_file`` to a local sink.

Checks the two promises of the streamed upload (issue 4, "Must have" 3 and 10):

* peak RSS while uploading 200 MB stays at most 64 MB, since the multipart body is produced
  as it is sent;
* the multipart encoding costs little against the fastest thing requests can do: a plain
  streamed ``requests.post(url, data=open(f, "rb"))`` of the same file, in the same run.

Each upload runs in a fresh subprocess, so that ``ru_maxrss`` is that upload's peak alone.
Not part of the test run (pytest collects ``test_*.py``): run it as a script::

    .venv/bin/python tests/benchmarks/bench_upload.py [--mb 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from peak_rss import peak_rss_mb
from transfer_report import print_round, report_child, run_child, summarize

_CHUNK = 1024 * 1024


class _Sink(BaseHTTPRequestHandler):
    """Reads the whole body and throws it away; answers like orq's upload."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        received = 0
        while remaining > 0:
            chunk = self.rfile.read(min(_CHUNK, remaining))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        body = json.dumps(
            {"file": {"file_id": "file_sink", "file_name": "x.jsonl", "bytes": str(received)}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_file(path: Path, megabytes: int) -> None:
    """A valid chat batch file of about ``megabytes`` MB (10**6 bytes), written in chunks."""
    filler = "x" * 3900
    target = megabytes * 1_000_000
    written = 0
    number = 0
    with path.open("w") as handle:
        while written < target:
            body = {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": filler}],
            }
            line = (
                json.dumps(
                    {
                        "custom_id": f"r{number}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": body,
                    }
                )
                + "\n"
            )
            handle.write(line)
            written += len(line)
            number += 1


def child(mode: str, url: str, path: str) -> None:
    """One upload in this process; prints seconds and peak RSS as JSON."""
    import requests

    from batchkit.client import Client

    baseline = peak_rss_mb()  # interpreter + imports, before any upload
    started = time.perf_counter()
    if mode == "client":
        with Client("orq", base_url=url, api_key="bench-key") as client:
            file = client.upload_file(path)
        sent = file.bytes
    else:
        with open(path, "rb") as handle:
            response = requests.post(url + "/v2/files", data=handle, timeout=(10, 600))
        response.raise_for_status()
        sent = int(response.json()["file"]["bytes"])
    seconds = time.perf_counter() - started
    report_child(seconds, baseline, peak_rss_mb(), sent=sent)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the streamed upload.")
    parser.add_argument("--mb", type=int, default=200, help="file size in MB (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="uploads of each kind (default 5)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "URL", "FILE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return 0

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.jsonl"
        make_file(path, options.mb)
        size = path.stat().st_size
        print(f"file: {size:,} bytes; sink: {url}; rounds: {options.rounds}")
        runs: dict[str, list[dict[str, float]]] = {"client": [], "plain": []}
        for round_number in range(options.rounds):
            for mode in ("plain", "client"):  # interleaved, so drift hits both alike
                result = run_child(__file__, mode, url, str(path))
                if result["sent"] < size:
                    raise SystemExit(f"{mode}: the sink got {result['sent']} of {size} bytes")
                runs[mode].append(result)
                print_round(round_number, mode, result, size)
    server.shutdown()

    return summarize(runs, "Client.upload_file", "plain requests.post")


if __name__ == "__main__":
    sys.exit(main())
