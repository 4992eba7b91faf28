"""``batchkit run`` when the server refuses for capacity, not content: the shard waits and is
sent again, and the job still finishes.

A batch that fails with ``token_limit_exceeded`` (the account's queue of enqueued tokens is
full) becomes the shard's next try, sent once another batch of the job has ended (or after a
pause, when none is running); a create answered 429 after the client's own retries is sent
again the same way.  Against llmock injecting 20% 429s and 20% 503s, a whole run completes and
llmock's own judge finds nothing to blame.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchkit.client import Client
from tests.helpers import jsonl, request
from tests.servers.cli import clean_env, explain, json_out, run_batchkit
from tests.servers.fake_orq import FakeOrq, Fault, RecordedRequest, token_limit_errors
from tests.servers.llmock_prism import LlmockServer
from tests.test_run_kill import JOB_KEY, batch_key

#: 12 requests in 3 shards: files are filled to just under 90% of --max-requests 5.
REQUESTS = 12
SHARDS = ("--max-requests", "5")
POLL = 0.05


def prompts(directory: Path) -> tuple[Path, list[str]]:
    """An input of 12 requests whose custom_ids (so shard hashes) are unique to this call."""
    tag = uuid.uuid4().hex[:8]
    ids = [f"{tag}-{number:02d}" for number in range(1, REQUESTS + 1)]
    path = directory / "prompts.jsonl"
    path.write_bytes(jsonl(*(request(custom_id) for custom_id in ids)))
    return path, ids


def run_against_fake(fake: FakeOrq, tmp_path: Path, *options: str) -> tuple[Any, list[str]]:
    """One ``batchkit run`` of a fresh input to its end; its JSON document and the ids."""
    path, ids = prompts(tmp_path)
    result = run_batchkit(
        "run", str(path), "-o", str(tmp_path / "results.jsonl"), *SHARDS,
        "--base-url", fake.url, "--poll-interval", str(POLL), "--format", "json", *options,
        env=clean_env(ORQ_API_KEY=fake.api_key),
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    assert "Traceback" not in result.stderr
    return json_out(result), ids


def check_all_succeeded(results: Path, ids: list[str]) -> None:
    rows = [orjson.loads(line) for line in results.read_bytes().splitlines()]
    assert [row["custom_id"] for row in rows] == ids
    assert {row["status"] for row in rows} == {"succeeded"}


def events(job_path: Path) -> list[tuple[str, int | None, str | None]]:
    """(kind, shard, detail) of every event of a finished job."""
    with sqlite3.connect(f"{job_path.as_uri()}?mode=ro", uri=True) as db:
        return db.execute("SELECT kind, shard, detail FROM events ORDER BY seq").fetchall()


def tries(fake: FakeOrq) -> dict[tuple[int, int, int], str]:
    """(shard, round, try) -> the final status of its one batch (two would fail here)."""
    groups = fake.state.batches_by_metadata(JOB_KEY)
    assert all(len(group) == 1 for group in groups.values()), f"created twice: {groups}"
    assert len(groups) == len(fake.state.batches)
    return {batch_key(group[0])[1:]: group[0]["status"] for group in groups.values()}


def creates(fake: FakeOrq) -> list[RecordedRequest]:
    return fake.requests_to("create")


def first_end(fake: FakeOrq) -> float:
    """When a client was first told that a batch had completed."""
    return min(
        recorded.time
        for recorded in fake.requests_to("retrieve")
        if isinstance(recorded.answer, dict) and recorded.answer.get("status") == "completed"
    )


def created_at(fake: FakeOrq, key: tuple[int, int, int]) -> float:
    """When the create of the batch of (shard, round, try) reached the fake."""
    return next(
        recorded.time
        for recorded in creates(fake)
        if recorded.status == 200 and batch_key(recorded.answer)[1:] == key
    )


def test_a_batch_refused_for_token_limit_is_sent_again_once_another_ends(
    fake_orq: FakeOrq, tmp_path: Path
) -> None:
    fake_orq.state.batch_failures.append(token_limit_errors())
    document, ids = run_against_fake(fake_orq, tmp_path)

    check_all_succeeded(tmp_path / "results.jsonl", ids)
    refused_shard = batch_key(next(iter(fake_orq.state.batches.values())))[1]
    expected = {(shard, 1, 1): "completed" for shard in (1, 2, 3)}
    expected.update({(refused_shard, 1, 1): "failed", (refused_shard, 1, 2): "completed"})
    assert tries(fake_orq) == expected
    assert (document["shards"], document["refusals"]) == (3, 1)
    refusals = [event for event in events(tmp_path / "results.jsonl.job.db")
                if event[0] == "refused"]  # fmt: skip
    assert len(refusals) == 1 and refusals[0][1] == refused_shard
    assert "token_limit_exceeded" in (refusals[0][2] or "")
    # Waited out: the new try was created only once another batch of the job had ended.
    assert created_at(fake_orq, (refused_shard, 1, 2)) > first_end(fake_orq)


def test_with_no_other_batch_running_a_refusal_is_waited_out_with_growing_pauses(
    fake_orq: FakeOrq, tmp_path: Path
) -> None:
    """One batch at a time, two refusals in a row: with nothing of the job running to wait
    for, nothing is sent for a pause that doubles from the poll interval (2x, then 4x)."""
    fake_orq.state.batch_failures.extend([token_limit_errors(), token_limit_errors()])
    document, ids = run_against_fake(fake_orq, tmp_path, "--max-active", "1")

    check_all_succeeded(tmp_path / "results.jsonl", ids)
    statuses = tries(fake_orq)
    assert sorted(statuses.values()) == ["completed"] * 3 + ["failed"] * 2
    for (shard, round_, try_), status in statuses.items():  # each refusal has its next try
        assert round_ == 1
        assert status == "completed" or statuses[shard, 1, try_ + 1] == "completed"
    assert document["refusals"] == 2
    refused = [
        recorded.time
        for recorded in fake_orq.requests_to("retrieve")
        if isinstance(recorded.answer, dict) and recorded.answer.get("status") == "failed"
    ]
    pauses = [
        min(create.time for create in creates(fake_orq) if create.time > seen) - seen
        for seen in refused
    ]
    assert pauses[0] >= 2 * POLL and pauses[1] >= 4 * POLL, pauses


def test_a_create_answered_429_is_sent_again_after_a_pause(
    fake_orq: FakeOrq, tmp_path: Path
) -> None:
    """With --max-attempts 1 the client does not retry: the job does, from the same upload,
    never creating a second batch for a shard."""
    fake_orq.faults.add("create", Fault.rate_limited(), times=3)
    document, ids = run_against_fake(fake_orq, tmp_path, "--max-attempts", "1")

    check_all_succeeded(tmp_path / "results.jsonl", ids)
    assert tries(fake_orq) == {(shard, 1, 1): "completed" for shard in (1, 2, 3)}
    answers = [recorded.status for recorded in creates(fake_orq)]
    assert answers.count(429) == 3 and answers.count(200) == 3
    assert len(fake_orq.requests_to("upload")) == 3  # the upload is kept for the next create
    assert document["refusals"] == 3
    kinds = Counter(event[0] for event in events(tmp_path / "results.jsonl.job.db"))
    assert kinds["refused"] == 3
    # No storm: after each 429, a pause before the next create.
    sent = creates(fake_orq)
    after_429 = [later.time - earlier.time for earlier, later in pairwise(sent)
                 if earlier.status == 429]  # fmt: skip
    assert min(after_429) >= POLL, after_429


# --- llmock ----------------------------------------------------------------------------------

LLMOCK_KEY = "sk-llmock-test-key-0123456789"


@pytest.mark.llmock
def test_a_run_against_llmock_with_429s_and_503s_completes_and_passes_its_judge(
    llmock_faulty_server: LlmockServer, tmp_path: Path
) -> None:
    """20% 429s and 20% 503s on every call: the job completes with one batch per shard, and
    ``llmock report --strict`` finds nothing to blame (waits honoured, no storm)."""
    server = llmock_faulty_server
    server.reset_journal()
    path, ids = prompts(tmp_path)
    out = tmp_path / "results.jsonl"
    # 10 attempts per call (llmock calls more a storm): 10 failures in a row at 40% is 1e-4.
    result = run_batchkit(
        "run", str(path), "-o", str(out), *SHARDS, "--profile", "openai",
        "--base-url", server.openai_base_url, "--max-attempts", "10", "--poll-interval", "0.5",
        "--format", "json",
        env=clean_env(OPENAI_API_KEY=LLMOCK_KEY),
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    check_all_succeeded(out, ids)

    with sqlite3.connect(f"{(tmp_path / 'results.jsonl.job.db').as_uri()}?mode=ro", uri=True) as db:
        (job_id,) = db.execute("SELECT value FROM meta WHERE key = 'job_id'").fetchone()
    with Client(
        "openai", base_url=server.openai_base_url, api_key=LLMOCK_KEY, max_attempts=10
    ) as c:
        keys = Counter(
            tuple(batch.metadata[JOB_KEY].rsplit("/", 3)[1:3])
            for batch in c.iter_batches(page_size=100)
            if batch.metadata.get(JOB_KEY, "").startswith(f"{job_id}/")
        )
    assert keys == Counter({("1", "1"): 1, ("2", "1"): 1, ("3", "1"): 1}), keys

    verdict = server.report(strict=True)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
