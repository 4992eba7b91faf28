"""``batchkit run`` and ``batchkit job``: one resumable job from prompts to answers.

Against the fake orq server (real HTTP on loopback) with scripted failures, llmock and
llama-stack; the CLI as a real subprocess where the behaviour is the CLI's (exit codes,
messages, resuming), the library in-process where a test needs to stop a run at a chosen
point.  Killing the process at any moment is tests/test_run_kill.py; capacity refusals are
tests/test_run_capacity.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import resource
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchkit.client import Client
from batchkit.job import JobFile
from batchkit.limits import Limits
from batchkit.run import JOB_KEY, run_job
from tests.helpers import REPO
from tests.servers.cli import clean_env, explain, json_out, run_batchkit
from tests.servers.fake_orq import FakeOrq, Fault
from tests.servers.llama_stack import FAILING_MODEL, MODEL, LlamaStackServer
from tests.servers.llmock_prism import LlmockServer
from tests.test_client import SECRET, make_client

CHAT = "/v1/chat/completions"
IDS = [f"request-{n:06d}" for n in range(1, 13)]
#: --max-requests 5: each file is filled to just under 90% of it, 4 requests: 3 shards.
SHARD_OPTIONS = ("--max-requests", "5")


@pytest.fixture
def fake(fake_orq: FakeOrq) -> FakeOrq:
    fake_orq.state.api_key = SECRET
    fake_orq.state.result_order = "shuffled"
    return fake_orq


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """12 prompts as a user writes them: bodies only, odd Unicode included."""
    path = tmp_path / "prompts.jsonl"
    texts = ["Grüße 👋", "line\u2028separator", "日本語のテキスト", "tab\there", 'quote "x"']
    path.write_bytes(
        b"".join(
            orjson.dumps({"messages": [{"role": "user", "content": f"{texts[n % 5]} #{n}"}]})
            + b"\n"
            for n in range(12)
        )
    )
    return path


def run_cli(fake: FakeOrq, *args: str) -> subprocess.CompletedProcess[str]:
    return run_batchkit(
        "run",
        *args,
        "--base-url",
        fake.url,
        "--poll-interval",
        "0.01",
        env=clean_env(ORQ_API_KEY=SECRET),
    )


def job_cli(fake: FakeOrq, *args: str) -> subprocess.CompletedProcess[str]:
    return run_batchkit("job", *args, env=clean_env(ORQ_API_KEY=SECRET, BATCHKIT_BASE_URL=fake.url))


def rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def batches_per_shard_and_round(fake: FakeOrq) -> Counter[tuple[int, int]]:
    """The fake's batches counted by (shard, round) of their ``batchkit_job`` metadata."""
    counted: Counter[tuple[int, int]] = Counter()
    for batch in fake.state.batches.values():
        _job, shard, round_, _try = batch["metadata"][JOB_KEY].split("/")
        counted[int(shard), int(round_)] += 1
    return counted


def network_calls(fake: FakeOrq, *routes: str) -> int:
    return sum(1 for seen in fake.requests if seen.route in routes)


def interrupted_run(fake: FakeOrq, prompts: Path, output: Path, **kwargs: Any) -> None:
    """A run stopped at its first pause: shards built, the first batches created."""

    def stop(_seconds: float) -> None:
        raise KeyboardInterrupt

    with make_client(fake, profile="orq") as client, pytest.raises(KeyboardInterrupt):
        run_job(
            prompts,
            output,
            client=client,
            endpoint=CHAT,
            model="gpt-4o-mini",
            limits=Limits(max_requests=5),
            sleep=stop,
            **kwargs,
        )


# --- end to end -------------------------------------------------------------------------------


def test_failures_are_sent_again_and_every_request_comes_out_once_in_input_order(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    fake.state.outcome_plan = {
        "request-000002": [500, "succeeded"],  # round 2 answers it
        "request-000006": ["expired", "missing", "succeeded"],  # round 3 does
        "request-000007": [429, 503, 503],  # still failing after the last round
        "request-000011": [400],  # a 4xx would fail again: never resent
    }
    out = tmp_path / "answers.jsonl"
    done = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT,
                   "--model", "gpt-4o-mini", *SHARD_OPTIONS, "--format", "json")  # fmt: skip
    assert done.returncode == 4, explain(done)
    got = rows(out)
    assert [row["custom_id"] for row in got] == IDS
    assert [row["line"] for row in got] == list(range(1, 13))
    statuses = {row["custom_id"]: (row["status"], row["status_code"]) for row in got}
    assert statuses.pop("request-000007") == ("failed", 503)
    assert statuses.pop("request-000011") == ("failed", 400)
    assert set(statuses.values()) == {("succeeded", 200)}
    assert "answer to request-000006" in orjson.dumps(got[5]["body"]).decode()
    # shard 1 = requests 1-4, shard 2 = 5-8, shard 3 = 9-12
    assert batches_per_shard_and_round(fake) == {
        (1, 1): 1, (1, 2): 1, (2, 1): 1, (2, 2): 1, (2, 3): 1, (3, 1): 1,
    }  # fmt: skip
    report = json_out(done)
    assert report["summary"]["counts"]["succeeded"] == 10
    assert report["summary"]["counts"]["failed"] == 2
    assert (report["shards"], report["batches"], report["rounds"]) == (3, 6, 3)
    assert report["job_file"] == f"{out}.job.db"


def test_running_a_finished_job_again_sends_and_downloads_nothing(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    fake.state.outcome_plan = {"request-000003": [500]}
    out = tmp_path / "answers.csv"
    args = (str(prompts), "-o", str(out), "--endpoint", CHAT, "--model", "gpt-4o-mini",
            *SHARD_OPTIONS)  # fmt: skip
    first = run_cli(fake, *args)
    assert first.returncode == 0, explain(first)  # round 2 succeeded
    written = out.read_bytes()
    calls = len(fake.requests)
    out.unlink()
    again = run_cli(fake, *args)
    assert again.returncode == 0, explain(again)
    assert len(fake.requests) == calls, [seen.path for seen in fake.requests[calls:]]
    assert out.read_bytes() == written
    assert "4 batch(es), 2 round(s)" in again.stderr


def test_python_api_prompts_in_answers_out(fake: FakeOrq, prompts: Path, tmp_path: Path) -> None:
    fake.state.outcome_plan = {"request-000012": ["cancelled"]}
    events: list[str] = []
    seen: list[tuple[int, int]] = []
    with make_client(fake, profile="orq") as client:
        result = run_job(
            prompts,
            tmp_path / "out.jsonl",
            client=client,
            endpoint=CHAT,
            model="gpt-4o-mini",
            limits=Limits(max_requests=5),
            max_active=1,
            poll_interval=0.01,
            on_event=lambda event: events.append(event.kind),
            progress=lambda finished, total: seen.append((finished, total)),
        )
    assert result.all_succeeded
    assert result.summary.counts["succeeded"] == 12
    assert (result.shards, result.batches, result.rounds, result.refusals) == (3, 4, 2, 0)
    assert result.job_file == tmp_path / "out.jsonl.job.db"
    assert events.count("created") == 4 and events[0] == "built"
    assert seen[-1] == (12, 12)
    assert all(finished <= total == 12 for finished, total in seen)
    # --max-active 1: never two batches at once
    created = [seen.time for seen in fake.requests if seen.route == "create"]
    assert len(created) == 4


def test_the_job_file_records_shards_attempts_and_each_request(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    fake.state.outcome_plan = {"request-000005": [503]}
    out = tmp_path / "out.jsonl"
    done = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT, *SHARD_OPTIONS,
                   "--model", "gpt-4o-mini", "--max-rounds", "1")  # fmt: skip
    assert done.returncode == 4, explain(done)
    with sqlite3.connect(f"file:{out}.job.db?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        states = db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall()
        assert dict(states) == {"succeeded": 11, "failed": 1}
        assert db.execute("SELECT COUNT(*) FROM attempts WHERE state = 'done'").fetchone()[0] == 3
    status = job_cli(fake, "status", f"{out}.job.db", "--format", "json")
    assert status.returncode == 0, explain(status)
    described = json_out(status)
    assert described["finished"] and not described["cancelled"]
    assert [shard["requests"] for shard in described["shards"]] == [4, 4, 4]
    attempt = described["shards"][1]["attempts"][0]
    assert attempt["status"] == "completed" and attempt["batch_id"] in fake.state.batches
    text = job_cli(fake, "status", f"{out}.job.db")
    assert text.returncode == 0 and "3 shard(s), 12 request(s), finished" in text.stdout


# --- resuming, and refusing what would not be the same job ------------------------------------


def test_another_input_or_other_options_are_refused_unless_restart(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    args = ("-o", str(out), "--endpoint", CHAT, *SHARD_OPTIONS)
    assert run_cli(fake, str(prompts), *args, "--model", "gpt-4o-mini").returncode == 0
    other = tmp_path / "other.jsonl"
    other.write_bytes(prompts.read_bytes() + prompts.read_bytes()[:60] + b"\n")
    refused = run_cli(fake, str(other), *args, "--model", "gpt-4o-mini")
    assert refused.returncode == 2, explain(refused)
    assert "job of another input" in refused.stderr and "--restart" in refused.stderr
    changed = run_cli(fake, str(prompts), *args, "--model", "gpt-4.1-mini")
    assert changed.returncode == 2, explain(changed)
    assert "other options (model differ)" in changed.stderr
    assert "Traceback" not in refused.stderr + changed.stderr
    assert len(fake.state.batches) == 3
    restarted = run_cli(fake, str(prompts), *args, "--model", "gpt-4.1-mini", "--restart")
    assert restarted.returncode == 0, explain(restarted)
    assert len(fake.state.batches) == 6
    assert {rows(out)[0]["custom_id"]} == {"request-000001"}


def test_restart_is_refused_while_the_job_has_batches_running(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    fake.state.steps_per_status = 1000  # the batches stay in progress
    out = tmp_path / "out.jsonl"
    interrupted_run(fake, prompts, out)
    running = len(fake.state.batches)
    assert running == 3
    refused = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT, *SHARD_OPTIONS,
                      "--model", "gpt-4o-mini", "--restart")  # fmt: skip
    assert refused.returncode == 2, explain(refused)
    assert "3 batch(es) still running" in refused.stderr
    assert "batchkit job cancel" in refused.stderr
    assert len(fake.state.batches) == running


def test_a_second_process_on_the_same_job_is_refused(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    fake.state.steps_per_status = 1000
    interrupted_run(fake, prompts, out)
    with open(f"{out}.job.db", "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        refused = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT,
                          *SHARD_OPTIONS, "--model", "gpt-4o-mini")  # fmt: skip
    assert refused.returncode == 2, explain(refused)
    assert "another batchkit process is running this job" in refused.stderr
    assert len(fake.state.batches) == 3


def test_cancel_stops_the_job_and_the_next_run_writes_what_was_done(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    fake.state.steps_per_status = 1000
    out = tmp_path / "out.jsonl"
    interrupted_run(fake, prompts, out, max_active=1)
    assert len(fake.state.batches) == 1
    status = job_cli(fake, "status", f"{out}.job.db", "--format", "json")
    first = json_out(status)["shards"][0]["attempts"][0]
    assert first["state"] == "active" and first["status"] == "validating"
    cancel = job_cli(fake, "cancel", f"{out}.job.db")
    assert cancel.returncode == 0, explain(cancel)
    assert cancel.stdout.split() == [first["batch_id"], "cancelling"]
    fake.state.steps_per_status = 1
    resumed = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT, *SHARD_OPTIONS,
                      "--model", "gpt-4o-mini")  # fmt: skip
    assert resumed.returncode == 4, explain(resumed)
    assert len(fake.state.batches) == 1  # nothing new was sent, not even a retry
    got = rows(out)
    assert [row["custom_id"] for row in got] == IDS
    assert {row["status"] for row in got} == {"cancelled"}
    assert got[0]["error"]["code"] == "batch_cancelled"  # sent, then cancelled
    assert got[4]["error"]["code"] == "job_cancelled"  # never sent
    assert "the job was cancelled" in resumed.stderr


# --- bad input ----------------------------------------------------------------------------------


def test_an_invalid_request_sends_nothing_unless_skip_invalid(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(prompts.read_bytes() + b'{"messages": "not a list"}\n')
    out = tmp_path / "out.jsonl"
    refused = run_cli(fake, str(bad), "-o", str(out), "--endpoint", CHAT, "--model", "m")
    assert refused.returncode == 1, explain(refused)
    assert f"{bad}:13" in refused.stderr and "nothing was sent" in refused.stderr
    assert not fake.requests and not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.jsonl", "prompts.jsonl"]
    skipped = run_cli(fake, str(bad), "-o", str(out), "--endpoint", CHAT, "--model", "m",
                      "--skip-invalid", "--restart")  # fmt: skip
    assert skipped.returncode == 0, explain(skipped)
    assert len(rows(out)) == 12
    assert "1 invalid request(s) not sent" in skipped.stderr


@pytest.mark.parametrize(
    "damage",
    ["truncated", "not a database", "a directory"],
)
def test_a_damaged_job_file_is_a_clear_error(
    fake: FakeOrq, prompts: Path, tmp_path: Path, damage: str
) -> None:
    out = tmp_path / "out.jsonl"
    job = tmp_path / "job.db"
    args = (str(prompts), "-o", str(out), "--job", str(job), "--endpoint", CHAT, "--model", "m")
    assert run_cli(fake, *args).returncode == 0
    data = job.read_bytes()
    job.unlink()
    if damage == "truncated":
        job.write_bytes(data[: len(data) // 2])
    elif damage == "not a database":
        job.write_text("these are not the bytes of a job file\n" * 200)
    else:
        job.mkdir()
    failed = run_cli(fake, *args)
    assert failed.returncode == 2, explain(failed)
    assert "Traceback" not in failed.stderr
    assert str(job) in failed.stderr
    assert "--restart" in failed.stderr or "is a directory" in failed.stderr
    status = job_cli(fake, "status", str(job))
    assert status.returncode == 2 and "Traceback" not in status.stderr


def test_a_full_disk_while_writing_the_results_leaves_the_job_usable(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes the results file's write fail as a full disk
    does (EFBIG instead of ENOSPC): a clear error, no results file, and the job completes
    when run again without the limit."""
    many = tmp_path / "many.jsonl"
    many.write_bytes(prompts.read_bytes() * 20)  # 240 requests, a results file of ~100 KB
    out = tmp_path / "out.jsonl"
    args = ["run", str(many), "-o", str(out), "--endpoint", CHAT, "--model", "m",
            "--base-url", fake.url, "--poll-interval", "0.01"]  # fmt: skip
    env = clean_env(ORQ_API_KEY=SECRET)
    assert run_batchkit(*args, env=env).returncode == 0
    expected = out.read_bytes()
    out.unlink()
    # Under the limit: the job file's WAL and shared-memory files (32 KiB) as they are opened.
    limit = len(expected) // 2
    assert limit > 40_000, limit

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = subprocess.run(
        [sys.executable, "-m", "batchkit", *args],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=120,
        check=False,
    )
    assert failed.returncode != 0, explain(failed)
    assert "Traceback" not in failed.stderr
    assert "too large" in failed.stderr.lower() or "space" in failed.stderr.lower(), failed.stderr
    assert not out.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".out.jsonl")]
    again = run_batchkit(*args, env=env)
    assert again.returncode == 0, explain(again)
    assert out.read_bytes() == expected


def test_usage_mistakes_are_exit_2_before_anything_is_sent(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / "out.jsonl")
    many = [arg for n in range(15) for arg in ("--metadata", f"k{n}=v")]
    for args, message in [
        (("-", "-o", out), "not stdin"),
        ((str(prompts), "-o", str(tmp_path / "out.txt")), "must end in .jsonl"),
        ((str(tmp_path / "nope.jsonl"), "-o", out), "no such file"),
        ((str(prompts), "-o", out, *many), "at most 14 metadata pairs"),
    ]:
        done = run_cli(fake, *args, "--endpoint", CHAT)
        assert done.returncode == 2, explain(done)
        assert message in done.stderr, done.stderr
    no_key = run_batchkit("run", str(prompts), "-o", out, "--endpoint", CHAT, "--base-url",
                          fake.url, env=clean_env())  # fmt: skip
    assert no_key.returncode == 2 and "no API key" in no_key.stderr, explain(no_key)
    assert not fake.requests
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prompts.jsonl"]


def test_a_job_file_that_sent_nothing_is_taken_over_by_new_arguments(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    """A run stopped while building (or refused for a missing --endpoint) sent nothing: the
    corrected command goes on with the same job file instead of asking for --restart."""
    out = tmp_path / "out.jsonl"
    JobFile.create(f"{out}.job.db", {"input_sha256": "0" * 64, "settings": "{}"}).close()
    done = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT, "--model", "m")
    assert done.returncode == 0, explain(done)
    assert len(rows(out)) == 12


# --- other servers ------------------------------------------------------------------------------


def openai_run(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(OPENAI_API_KEY="sk-test-key-123456")
    return run_batchkit("run", *args, "--profile", "openai", "--base-url", base_url,
                        "--poll-interval", "0.2", env=env, timeout=300)  # fmt: skip


def openai_batches(base_url: str, job_file: Path) -> Counter[tuple[int, int]]:
    """The server's batches of this job, counted by (shard, round)."""
    with JobFile.open(job_file) as store:
        job_id = store.job_id
    counted: Counter[tuple[int, int]] = Counter()
    with Client("openai", base_url=base_url, api_key="sk-test-key-123456") as client:
        for batch in client.iter_batches(max_pages=20):
            key = batch.metadata.get(JOB_KEY, "")
            if key.startswith(f"{job_id}/"):
                _job, shard, round_, _try = key.split("/")
                counted[int(shard), int(round_)] += 1
    return counted


@pytest.mark.llmock
def test_llmock_end_to_end(llmock_server: LlmockServer, prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    done = openai_run(llmock_server.openai_base_url, str(prompts), "-o", str(out),
                      "--endpoint", CHAT, "--model", "gpt-4o-mini", *SHARD_OPTIONS)  # fmt: skip
    assert done.returncode == 0, explain(done)
    got = rows(out)
    assert [row["custom_id"] for row in got] == IDS
    assert all(row["status"] == "succeeded" and row["usage"] for row in got)
    assert openai_batches(llmock_server.openai_base_url, Path(f"{out}.job.db")) == {
        (1, 1): 1, (2, 1): 1, (3, 1): 1,
    }  # fmt: skip


@pytest.mark.llmock
@pytest.mark.llama_stack
def test_llama_stack_end_to_end(
    llama_stack_server: LlamaStackServer, prompts: Path, tmp_path: Path
) -> None:
    base = llama_stack_server.openai_base_url
    good = tmp_path / "good.jsonl"
    done = openai_run(base, str(prompts), "-o", str(good), "--endpoint", CHAT,
                      "--model", MODEL, *SHARD_OPTIONS)  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert [row["custom_id"] for row in rows(good)] == IDS
    assert {row["status"] for row in rows(good)} == {"succeeded"}
    # Every request of the failing model fails (no status): each round resends them all.
    bad = tmp_path / "bad.jsonl"
    failed = openai_run(base, str(prompts), "-o", str(bad), "--endpoint", CHAT,
                        "--model", FAILING_MODEL, *SHARD_OPTIONS, "--max-rounds", "2")  # fmt: skip
    assert failed.returncode == 4, explain(failed)
    assert [row["custom_id"] for row in rows(bad)] == IDS
    assert {row["status"] for row in rows(bad)} == {"failed"}
    assert openai_batches(base, Path(f"{bad}.job.db")) == {
        (shard, round_): 1 for shard in (1, 2, 3) for round_ in (1, 2)
    }


# --- the README ---------------------------------------------------------------------------------


def test_the_readme_python_example_runs_prompts_in_answers_out(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## `batchkit run`", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    fake.state.progression = ["validating", "completed"]  # one poll (5 s) is enough
    (tmp_path / "prompts.jsonl").write_bytes(prompts.read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(ORQ_API_KEY=SECRET, BATCHKIT_BASE_URL=fake.url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts, outcome = done.stdout.splitlines()
    assert counts.startswith("{'succeeded': 12, 'failed': 0,") and counts.endswith("} 1 1")
    assert outcome == "True out/answers.jsonl out/answers.jsonl.job.db"
    assert [row["custom_id"] for row in rows(tmp_path / "out" / "answers.jsonl")] == IDS


def test_an_upload_the_server_lost_between_runs_is_uploaded_again(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    """A run stopped after the upload and a refused create; the file is gone on the server when
    the job resumes (files expire): the create's 404 makes it upload again, not fail forever."""
    fake.faults.add("create", Fault.rate_limited(), times=5)  # the client's 5 attempts
    out = tmp_path / "out.jsonl"
    interrupted_run(fake, prompts, out, max_active=1)
    with JobFile.open(f"{out}.job.db") as store:
        (refused,) = store.attempts(("uploaded",))
    assert refused.file_id in fake.state.files and not fake.state.batches
    del fake.state.files[refused.file_id or ""]
    with make_client(fake, profile="orq") as client:
        result = run_job(prompts, out, client=client, endpoint=CHAT, model="gpt-4o-mini",
                         limits=Limits(max_requests=5), max_active=1,
                         poll_interval=0.01)  # fmt: skip
    assert result.all_succeeded and result.batches == 3
    with sqlite3.connect(f"file:{out}.job.db?mode=ro", uri=True) as db:
        kinds = [row[0] for row in db.execute("SELECT kind FROM events ORDER BY seq")]
    assert kinds.count("upload_lost") == 1 and kinds.count("refused") == 1
    assert kinds.count("uploaded") == 4  # 3 shards, one of them twice


def test_in_ci_only_the_summary_is_printed_and_on_a_terminal_a_bar(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    args = ("-o", str(tmp_path / "out.jsonl"), "--endpoint", CHAT, "--model", "m", *SHARD_OPTIONS)
    quiet = run_cli(fake, str(prompts), *args)
    assert quiet.returncode == 0, explain(quiet)
    assert quiet.stdout == ""
    lines = quiet.stderr.splitlines()
    assert lines[0] == "3 shard(s), 3 batch(es), 1 round(s)"
    assert lines[1] == "12 requests: 12 succeeded"
    assert lines[-1].startswith("wrote ") and len(lines) == 4  # + the tokens line
    # On a terminal: the steps above a progress bar over the requests.
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    with open(os.devnull, "wb") as devnull:
        command = [sys.executable, "-m", "batchkit", "run", str(prompts), *args, "--restart"]
        process = subprocess.run(
            [*command, "--base-url", fake.url, "--poll-interval", "0.01"],
            stdin=subprocess.DEVNULL,
            stdout=devnull,
            stderr=child,
            env=clean_env(ORQ_API_KEY=SECRET),
            timeout=120,
            check=False,
        )
    os.close(child)
    shown = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(parent, 65536):
            shown += chunk
    os.close(parent)
    assert process.returncode == 0, shown
    text = shown.decode(errors="replace")
    assert "batchkit: built 12 request(s) into 3 shard(s)" in text
    assert "batchkit: shard 3, round 1: batch " in text
    assert re.search(r"run: 100%\|.*\| 12/12", text), text


def test_what_the_profile_does_not_serve_is_refused_before_anything_is_built(
    fake: FakeOrq, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    refused = run_cli(fake, str(prompts), "-o", str(out), "--endpoint", CHAT,
                      "--completion-window", "48h")  # fmt: skip
    assert refused.returncode == 1, explain(refused)
    assert "does not accept --completion-window '48h': it accepts 24h" in refused.stderr
    responses = tmp_path / "responses.jsonl"  # the input's own url names the endpoint
    responses.write_bytes(b'{"url": "/v1/responses", "body": {"input": "hi"}}\n')
    for args in ((str(prompts), "--endpoint", "/v1/responses"), (str(responses),)):
        other = run_cli(fake, *args, "-o", str(out), "--profile", "llama-stack")
        assert other.returncode == 1, explain(other)
        assert "does not serve /v1/responses" in other.stderr, other.stderr
        assert "/v1/chat/completions" in other.stderr  # the profile's list
    responses.unlink()
    assert not fake.requests
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prompts.jsonl"]
