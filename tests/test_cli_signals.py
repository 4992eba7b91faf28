"""SIGTERM ends every command as Ctrl-C does: one line on stderr, exit 143, no traceback.

A CI runner stops a job with SIGTERM; Python's default would end the process on the spot,
leaving temporary files and no word of why.  ``build`` (which has temporaries to remove) has
its own test in test_build_hardening.py; this one checks that the handling is every
command's, with ``wait`` polling a batch that never ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import CHAT, jsonl, request
from tests.servers.cli import clean_env
from tests.servers.fake_orq import FakeOrq, Fault

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


# -- Ctrl-C (SIGINT): exit 130, one line that says what state things were left in -------------


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchkit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C, then the output; the process must have been running when it came."""
    assert process.poll() is None, "the command ended before Ctrl-C"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, f"stdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr
    return stdout, stderr


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


def test_ctrl_c_during_wait_says_the_batch_goes_on(orq: FakeOrq) -> None:
    stored = orq.state.store_file("requests.jsonl", "batch", jsonl(request("a")))
    status, batch = orq.state.create_batch(
        {"input_file_id": stored.id, "endpoint": CHAT, "completion_window": "24h"}
    )
    assert status == 200
    process = start("wait", batch["id"], "--base-url", orq.url, env=clean_env(ORQ_API_KEY=SECRET))
    wait_until(lambda: bool(orq.requests_to("retrieve")), "a poll")
    stdout, stderr = interrupt(process)
    assert stderr.splitlines()[-1].startswith("batchkit: error: interrupted")
    assert SECRET not in stdout + stderr
    assert orq.state.batches[batch["id"]]["status"] == "validating"  # nothing was cancelled


def test_ctrl_c_while_validating_a_large_file(tmp_path: Path) -> None:
    # Every line an error that must be explained (the slow path): seconds, even in parts.
    path = tmp_path / "large.jsonl"
    empty = {"model": "m", "messages": []}
    path.write_bytes(jsonl(*(request(f"r{n}", empty) for n in range(200_000))))  # 22 MB
    process = start("validate", str(path), env=clean_env())
    time.sleep(0.5)  # well into the file
    assert process.poll() is None, "the command ended before Ctrl-C"
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    # At once: a child still checking its part (seconds of work) would be found here.
    left = processes_naming(path)
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    assert not left, "a process checking a part of the file outlived the command"
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stdout == ""  # no verdict on a file not read to the end
    assert stderr == "batchkit: error: interrupted\n"


def processes_naming(path: Path) -> list[str]:
    """The processes whose command line names ``path`` (Linux's /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(path).encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:  # gone meanwhile
            pass
    return found


def test_ctrl_c_after_the_create_was_sent_says_a_batch_may_exist(
    orq: FakeOrq, tmp_path: Path
) -> None:
    orq.faults.add("create", Fault.slow(60))  # the batch is made; the answer never comes
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl(request("a"), request("b")))
    process = start("submit", str(path), "--base-url", orq.url, env=clean_env(ORQ_API_KEY=SECRET))
    wait_until(lambda: bool(orq.state.batches), "the create")
    _, stderr = interrupt(process)
    assert stderr.splitlines()[-1] == (
        "batchkit: error: interrupted after the upload: a batch may have been created, "
        "check with `batchkit list`"
    )
    assert len(orq.state.batches) == 1
