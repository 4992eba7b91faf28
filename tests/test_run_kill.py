"""``batchkit run`` killed at any moment, then run again, never pays for a request twice.

The run is a real subprocess against the fake orq server: 12 requests in 3 shards (files are
filled to just under 90% of ``--max-requests 5``), with failures scripted per request so that
rounds 2 and 3 happen.  It is killed with SIGKILL at 20 points: just after each kind of state
change (watched in the job file's ``events`` table), at the network's worst moments (the
server has stored the upload or the batch, or ended the batch, or is about to send the
results, and the client never hears the answer: the fake's ``on_request`` hook kills it
there), and at seeded random times.  After each kill the same command runs again.  In the
end the results file must hold every request once, in input order, with its final status,
and the server exactly one batch per shard per round.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import jsonl, request
from tests.servers.cli import clean_env
from tests.servers.fake_orq import (
    TERMINAL,
    FakeOrq,
    Outcome,
    RecordedRequest,
    token_limit_errors,
)

JOB_KEY = "batchkit_job"
HASH_KEY = "batchkit_sha256"
IDS = [f"req-{number:02d}" for number in range(1, 13)]
#: How a request ends each time it is sent (then it succeeds): rounds 2 and 3 are needed.
PLAN: dict[str, list[Outcome]] = {
    "req-01": [500, 503],  # shard 1: succeeds in round 3
    "req-03": ["expired"],  # shard 1: succeeds in round 2
    "req-06": ["missing"],  # shard 2: in neither result file, then succeeds
    "req-07": [400],  # shard 2: not worth retrying: failed for good
    "req-10": [429, 500, 502],  # shard 3: still failing after the last round
    "req-12": ["cancelled"],  # shard 3: succeeds in round 2
}
#: (shard, round) -> the requests its one batch holds.
EXPECTED_BATCHES = {
    (1, 1): IDS[0:4],
    (2, 1): IDS[4:8],
    (3, 1): IDS[8:12],
    (1, 2): ["req-01", "req-03"],
    (2, 2): ["req-06"],
    (3, 2): ["req-10", "req-12"],
    (1, 3): ["req-01"],
    (3, 3): ["req-10"],
}
#: (status, status_code) in the results file of the requests that did not succeed.
FINAL = {"req-07": ("failed", 400), "req-10": ("failed", 502)}
#: Some requests failed for good: the exit code says so.
EXIT_SOME_FAILED = 4
#: No run of 12 requests takes this long; one that does has hung.
RUN_DEADLINE = 60.0


def batch_key(batch: dict[str, Any]) -> tuple[str, int, int, int]:
    """``batchkit_job`` metadata ``JOB/SHARD/ROUND/TRY`` as (job, shard, round, try)."""
    job, shard, round_, try_ = batch["metadata"][JOB_KEY].rsplit("/", 3)
    return job, int(shard), int(round_), int(try_)


def read_events(job_path: Path) -> list[tuple[int, str]]:
    """(seq, kind) of every event so far, read as ``batchkit job status`` would: read-only,
    while the run may be writing.  Nothing yet (no file, no table) reads as no events."""
    if not job_path.exists():
        return []
    try:
        with contextlib.closing(
            sqlite3.connect(f"{job_path.as_uri()}?mode=ro", uri=True, timeout=5)
        ) as db:
            return db.execute("SELECT seq, kind FROM events ORDER BY seq").fetchall()
    except sqlite3.OperationalError:
        return []


class Killer:
    """SIGKILL a run once, from whichever thread sees its moment first, and reap it: once
    :meth:`kill` returns, the process is gone (the fake's answer then reaches no one)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._lock = threading.Lock()

    def kill(self) -> None:
        with self._lock:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@dataclass(frozen=True)
class Point:
    """Where a run is killed: just after a new event of kind ``event``, inside the fake when
    ``route`` has done its work and ``when`` holds (before its answer), or ``delay`` seconds
    after the run's first sign of life (a request to the server or a new event: the time a
    resumed run spends starting Python is not where anything can go wrong)."""

    name: str
    event: str | None = None
    route: str | None = None
    when: Callable[[Job, RecordedRequest], bool] = lambda job, recorded: True
    delay: float | None = None

    def due(self, now: float, alive_since: float | None) -> bool:
        """Has the random moment come?"""
        if self.delay is None or alive_since is None:
            return False
        return now - alive_since >= self.delay


@dataclass
class Job:
    """One input, its job file and the fake it runs against; every run of it is logged."""

    fake: FakeOrq
    directory: Path
    runs: int = 0
    #: Batches whose terminal status a client has been sent (or was about to be).
    seen_ended: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.input.write_bytes(jsonl(*(request(custom_id) for custom_id in IDS)))
        self.fake.state.outcome_plan = {key: list(value) for key, value in PLAN.items()}

    @property
    def input(self) -> Path:
        return self.directory / "prompts.jsonl"

    @property
    def output(self) -> Path:
        return self.directory / "results.jsonl"

    @property
    def job_path(self) -> Path:
        return self.directory / "results.jsonl.job.db"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "batchkit", "run", str(self.input), "-o", str(self.output),
            "--max-requests", "5", "--base-url", self.fake.url, "--poll-interval", "0.02",
            "--connect-timeout", "2", "--read-timeout", "5", "-q",
        ]  # fmt: skip

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        with open(self.log(), "wb") as log:
            return subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(ORQ_API_KEY=self.fake.api_key),
            )

    def log(self, run: int | None = None) -> Path:
        return self.directory / f"run-{run or self.runs}.log"

    def explain(self, process: subprocess.Popen[bytes]) -> str:
        return f"run {self.runs} exit {process.returncode}:\n{self.log().read_text()}"

    def ends_a_batch(self, recorded: RecordedRequest, round_: int | None = None) -> bool:
        """Is this the first answer that tells a client the batch has ended?"""
        answer = recorded.answer
        if recorded.status != 200 or not isinstance(answer, dict):
            return False
        if answer.get("status") not in TERMINAL or answer["id"] in self.seen_ended:
            return False
        self.seen_ended.add(answer["id"])
        return round_ is None or batch_key(answer)[2] == round_

    def run_until(self, point: Point) -> bool:
        """Run the job until ``point`` and kill it there; False when it ended first."""
        baseline = len(read_events(self.job_path))
        process = self.start()
        killer = Killer(process)
        alive: list[float] = []  # when the run first showed signs of life

        def on_request(route: str, recorded: RecordedRequest) -> None:
            alive.append(time.monotonic())
            if route == point.route and point.when(self, recorded):
                killer.kill()

        self.fake.state.on_request = on_request
        started = time.monotonic()
        try:
            while process.poll() is None:
                now = time.monotonic()
                assert now - started < RUN_DEADLINE, f"run {self.runs} hung at {point.name}"
                kinds = [kind for _, kind in read_events(self.job_path)[baseline:]]
                if kinds:
                    alive.append(now)
                if point.event in kinds or point.due(now, min(alive, default=None)):
                    killer.kill()
                time.sleep(0.001)
        finally:
            self.fake.state.on_request = None
            if process.poll() is None:
                killer.kill()
        return process.returncode == -signal.SIGKILL

    def finish(self) -> subprocess.Popen[bytes]:
        """Run the job to its end, untouched."""
        process = self.start()
        process.wait(RUN_DEADLINE)
        return process


def check_results(job: Job) -> None:
    """Every request once, in input order, with its final status and its own answer."""
    rows = [orjson.loads(line) for line in job.output.read_bytes().splitlines()]
    assert [row["custom_id"] for row in rows] == IDS
    assert [(row["status"], row["status_code"]) for row in rows] == [
        FINAL.get(custom_id, ("succeeded", 200)) for custom_id in IDS
    ]
    assert [row["line"] for row in rows] == list(range(1, len(IDS) + 1))
    for row in rows:
        if row["status"] == "succeeded":
            content = row["body"]["choices"][0]["message"]["content"]
            assert content == f"answer to {row['custom_id']}"


def refused_for_capacity(batch: dict[str, Any]) -> bool:
    errors = (batch.get("errors") or {}).get("data") or []
    return any(error.get("code") == "token_limit_exceeded" for error in errors)


def check_batches(job: Job) -> None:
    """Exactly one batch per shard per round, each holding the right requests: none created
    twice, none lost, none left running.  A batch refused for capacity is followed by one
    next try of the same round (``JOB/SHARD/ROUND/TRY+1``)."""
    state = job.fake.state
    groups = state.batches_by_metadata(JOB_KEY)
    doubled = {key: [batch["id"] for batch in group] for key, group in groups.items()
               if len(group) > 1}  # fmt: skip
    assert not doubled, f"created more than once: {doubled}"
    batches = [group[0] for group in groups.values()]
    assert len(batches) == len(state.batches), "a batch without batchkit_job metadata"
    assert len({batch_key(batch)[0] for batch in batches}) == 1, "batches of several jobs"
    refused = [batch_key(batch)[1:] for batch in batches if refused_for_capacity(batch)]
    keys = sorted(batch_key(batch)[1:] for batch in batches)
    assert keys == sorted(
        [(shard, round_, 1) for shard, round_ in EXPECTED_BATCHES]
        + [(shard, round_, try_ + 1) for shard, round_, try_ in refused]
    )
    for batch in batches:
        _, shard, round_, try_ = batch_key(batch)
        refusal = (shard, round_, try_) in refused
        assert batch["status"] == ("failed" if refusal else "completed"), batch
        assert sorted(state.batch_custom_ids(batch["id"])) == EXPECTED_BATCHES[shard, round_]
        assert batch["metadata"][HASH_KEY] == state.files[batch["input_file_id"]].sha256


def finish_and_check(job: Job) -> None:
    """The last run completes the job; one more changes nothing, sends nothing new."""
    done = job.finish()
    assert done.returncode == EXIT_SOME_FAILED, job.explain(done)
    check_results(job)
    check_batches(job)
    results = job.output.read_bytes()
    creates = len(job.fake.requests_to("create"))
    uploads = len(job.fake.requests_to("upload"))
    again = job.finish()
    assert again.returncode == EXIT_SOME_FAILED, job.explain(again)
    assert job.output.read_bytes() == results
    assert len(job.fake.requests_to("create")) == creates
    assert len(job.fake.requests_to("upload")) == uploads
    assert "Traceback" not in "".join(job.log(n).read_text() for n in range(1, job.runs + 1))


#: Just after each kind of state change a run without capacity refusals goes through
#: (``finished`` is the last thing a run does: the second run in :func:`finish_and_check`).
EVENT_POINTS = [
    Point(f"after {kind}", event=kind)
    for kind in ("built", "uploaded", "creating", "created", "ended", "downloaded", "collected")
]
#: The network's worst moments: the server has done the work, the client never hears of it.
NETWORK_POINTS = [
    Point("upload stored, answer lost", route="upload"),
    Point("create stored, answer lost", route="create", when=lambda j, r: r.status == 200),
    Point("retrieve ends a batch, answer lost", route="retrieve",
          when=lambda job, recorded: job.ends_a_batch(recorded)),
    Point("results about to be sent", route="results"),
    Point("round-2 create stored, answer lost", route="create",
          when=lambda j, r: r.status == 200 and batch_key(r.answer)[2] == 2),
    Point("retrieve ends a round-3 batch, answer lost", route="retrieve",
          when=lambda job, recorded: job.ends_a_batch(recorded, round_=3)),
]  # fmt: skip
RANDOM_KILLS = 7
RANDOM_SEED = 20250909


def test_killed_at_every_kind_of_state_change(fake_orq: FakeOrq, tmp_path: Path) -> None:
    job = Job(fake_orq, tmp_path)
    for point in EVENT_POINTS:
        assert job.run_until(point), f"the run ended before {point.name}: {job.log().read_text()}"
    finish_and_check(job)


def test_killed_when_the_server_acted_but_the_answer_was_lost(
    fake_orq: FakeOrq, tmp_path: Path
) -> None:
    job = Job(fake_orq, tmp_path)
    for point in NETWORK_POINTS:
        assert job.run_until(point), f"the run ended before {point.name}: {job.log().read_text()}"
    finish_and_check(job)


def test_killed_at_random_times(tmp_path: Path) -> None:
    """Seeded random kills, each job run again until it ends: a new job (and server) when a
    job ended before all the kills were made."""
    rng = random.Random(RANDOM_SEED)
    kills = 0
    for attempt in range(1, 4):
        with FakeOrq() as fake:
            job = Job(fake, tmp_path / f"job-{attempt}")
            while kills < RANDOM_KILLS:
                delay = rng.uniform(0.0, 0.1)
                if not job.run_until(Point(f"random {delay:.3f} s", delay=delay)):
                    break  # the job ended before the kill
                kills += 1
            finish_and_check(job)
        if kills == RANDOM_KILLS:
            return
    pytest.fail(f"only {kills} of {RANDOM_KILLS} random kills landed before the jobs ended")


def test_killed_just_after_a_capacity_refusal(fake_orq: FakeOrq, tmp_path: Path) -> None:
    """The first batch fails with token_limit_exceeded and the run dies just after recording
    it: the next run sends that shard's next try once, and nothing else again."""
    fake_orq.state.batch_failures.append(token_limit_errors())
    job = Job(fake_orq, tmp_path)
    assert job.run_until(Point("after refused", event="refused")), job.log().read_text()
    finish_and_check(job)
    assert sum(map(refused_for_capacity, fake_orq.state.batches.values())) == 1


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_cleanly_and_a_later_run_completes(
    fake_orq: FakeOrq, tmp_path: Path, signum: int, code: int
) -> None:
    """Ctrl-C (or SIGTERM) while the batches run: the exit code says so, no traceback, the job
    file is intact, no batch was cancelled, and the next run finishes with the same batches."""
    job = Job(fake_orq, tmp_path)
    fake_orq.state.steps_per_status = 10**6  # the batches stay in progress
    process = job.start()
    started = time.monotonic()
    while [kind for _, kind in read_events(job.job_path)].count("created") < 3:
        assert process.poll() is None, job.explain(process)
        assert time.monotonic() - started < RUN_DEADLINE, "three batches were never created"
        time.sleep(0.005)
    process.send_signal(signum)
    process.wait(RUN_DEADLINE)
    assert process.returncode == code, job.explain(process)
    assert "Traceback" not in job.log().read_text()
    with contextlib.closing(sqlite3.connect(f"{job.job_path.as_uri()}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert fake_orq.requests_to("cancel") == []
    assert len(fake_orq.state.batches) == 3

    fake_orq.state.steps_per_status = 1
    finish_and_check(job)


def test_the_kill_points_are_twenty_and_distinct() -> None:
    """The issue asks for SIGKILL at 20 different points."""
    names = [point.name for point in EVENT_POINTS + NETWORK_POINTS]
    assert len(set(names)) == len(names)
    assert len(names) + RANDOM_KILLS == 20
