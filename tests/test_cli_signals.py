"""SIGTERM ends every command as Ctrl-C does: one line on stderr, exit 143, no traceback.

A CI runner stops a job with SIGTERM; Python's default would end the process on the spot,
leaving temporary files and no word of why.  ``build`` (which has temporaries to remove) has
its own test in test_build_hardening.py; this one checks that the handling is every
command's, with ``wait`` polling a batch that never ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CHAT, jsonl, request
from tests.servers.cli import clean_env
from tests.servers.fake_orq import FakeOrq

SECRET = "sk-orq-SIGNAL-TEST-1b2c3d4e"


@pytest.fixture
def orq() -> Iterator[FakeOrq]:
    with FakeOrq() as server:
        server.state.api_key = SECRET
        server.state.steps_per_status = 10**9  # the batch stays validating
        yield server


def test_sigterm_during_wait_exits_143_with_one_line(orq: FakeOrq, tmp_path: Path) -> None:
    stored = orq.state.store_file("requests.jsonl", "batch", jsonl(request("a")))
    status, batch = orq.state.create_batch(
        {"input_file_id": stored.id, "endpoint": CHAT, "completion_window": "24h"}
    )
    assert status == 200
    process = subprocess.Popen(
        [sys.executable, "-m", "batchkit", "wait", batch["id"], "--base-url", orq.url],
        env=clean_env(ORQ_API_KEY=SECRET),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not orq.requests_to("retrieve") and time.monotonic() < deadline:
        time.sleep(0.05)  # polling has begun: the handler is in place
    assert orq.requests_to("retrieve"), "wait never polled"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.endswith("batchkit: error: terminated\n")
    assert SECRET not in stdout + stderr
