"""The enqueued-token limit where batches are sent: ``submit`` refuses a file over it before
the upload, and ``run`` keeps the prompt tokens of its batches in flight under it.

Against the fake orq server on loopback; the CLI as a real subprocess.  The counts the tests
compare with come from batchkit's own counter, whose exactness against tiktoken is
tests/test_tokens.py's business.
"""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from batchkit.token_files import count_file_tokens
from tests.servers.cli import clean_env, explain, json_out, run_batchkit
from tests.servers.fake_orq import TERMINAL, FakeOrq, RecordedRequest
from tests.test_client import SECRET

CHAT = "/v1/chat/completions"
QUESTION = "why is the sky blue? " * 4


@pytest.fixture
def fake(fake_orq: FakeOrq) -> FakeOrq:
    fake_orq.state.api_key = SECRET
    return fake_orq


def chat_file(path: Path, count: int) -> Path:
    """A batch file of ``count`` chat requests with prompts of a few dozen tokens each."""
    lines = [
        {
            "custom_id": f"q-{n:03d}",
            "method": "POST",
            "url": CHAT,
            "body": {
                "model": "openai/gpt-4o-mini",
                "messages": [
                    {"role": "user", "content": f"Question {n}: " + "why is the sky blue? " * 4}
                ],
            },
        }
        for n in range(count)
    ]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_submit_refuses_a_file_over_the_limit_before_the_upload(
    fake: FakeOrq, tmp_path: Path
) -> None:
    batch = chat_file(tmp_path / "batch.jsonl", 20)
    total = count_file_tokens(batch).prompt
    for how in (("--max-enqueued-tokens", str(total - 1)), ()):
        env = {} if how else {"BATCHKIT_MAX_ENQUEUED_TOKENS": f"{total - 1:_}"}
        refused = run_batchkit("submit", str(batch), *how, "--base-url", fake.url,
                               env=clean_env(ORQ_API_KEY=SECRET, **env))  # fmt: skip
        assert refused.returncode == 1, explain(refused)
        assert "token_limit_exceeded" in refused.stdout + refused.stderr
        assert f"{total:,} prompt tokens" in refused.stdout + refused.stderr
    assert not [seen for seen in fake.requests if seen.route == "upload"]
    near = run_batchkit("submit", str(batch), "--max-enqueued-tokens", str(total + 1),
                        "--base-url", fake.url, "--format", "json",
                        env=clean_env(ORQ_API_KEY=SECRET))  # fmt: skip
    assert near.returncode == 0, explain(near)
    warnings = json_out(near)["validation"]["warnings"]
    assert [warning["code"] for warning in warnings] == ["near_limit"]
    assert len(fake.state.batches) == 1


def test_a_bad_limit_in_the_environment_is_a_usage_error(fake: FakeOrq, tmp_path: Path) -> None:
    batch = chat_file(tmp_path / "batch.jsonl", 2)
    env = clean_env(ORQ_API_KEY=SECRET, BATCHKIT_MAX_ENQUEUED_TOKENS="lots")
    done = run_batchkit("submit", str(batch), "--base-url", fake.url, env=env)
    assert done.returncode == 2, explain(done)
    assert "BATCHKIT_MAX_ENQUEUED_TOKENS='lots' is not a number" in done.stderr
    assert not fake.requests


def test_run_never_has_more_than_the_limit_in_flight(fake: FakeOrq, tmp_path: Path) -> None:
    """Each create is checked where it lands: the prompt tokens of the job's batches that
    have not ended, this one included, never exceed the limit; and every shard is under it."""
    prompts = chat_file(tmp_path / "prompts.jsonl", 60)
    total = count_file_tokens(prompts).prompt
    limit = total // 3  # about three shards' worth, of which two fit at a time
    fake.state.steps_per_status = 3  # batches stay in flight for a few polls
    seen: list[int] = []
    lock = threading.Lock()

    def tokens_of(batch: dict[str, object]) -> int:
        stored = fake.state.files[str(batch["input_file_id"])]
        path = tmp_path / f"in-{stored.id}.jsonl"
        path.write_bytes(stored.content or b"")
        return count_file_tokens(path).prompt

    def check(route: str, recorded: RecordedRequest) -> None:
        if route != "create" or recorded.status != 200:
            return
        with lock:
            flying = [b for b in fake.state.batches.values() if b["status"] not in TERMINAL]
            seen.append(sum(tokens_of(batch) for batch in flying))

    fake.state.on_request = check
    out = tmp_path / "answers.jsonl"
    done = run_batchkit("run", str(prompts), "-o", str(out), "--max-enqueued-tokens", str(limit),
                        "--max-active", "8", "--base-url", fake.url, "--poll-interval", "0.01",
                        env=clean_env(ORQ_API_KEY=SECRET))  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert len(out.read_bytes().splitlines()) == 60
    shards = sorted((tmp_path / "answers.jsonl.job.files" / "round-1").glob("shard*.jsonl"))
    assert len(shards) >= 4
    assert all(count_file_tokens(shard).prompt < limit * 0.9 for shard in shards)
    assert len(seen) == len(shards)
    assert max(seen) <= limit, (seen, limit)
    assert max(seen) > limit // 2  # more than one batch was in flight at some point
