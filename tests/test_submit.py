"""batchkit.submit: validate -> upload -> create, safe re-runs, dry runs and waiting."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from batchkit.client import Batch, Client
from batchkit.errors import InvalidInputError, UsageError, WaitTimeout
from batchkit.submit import (
    HASH_KEY,
    check_metadata,
    file_sha256,
    has_room_for_sha256,
    submit,
    wait_for_batch,
)
from tests.helpers import CHAT
from tests.servers.fake_orq import FakeOrq, Fault

SECRET = "sk-orq-S3CRET-submit-51a2b7"


class FakeClock:
    """A clock that the fake sleep moves forward: waits without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake(fake_orq: FakeOrq) -> FakeOrq:
    fake_orq.state.api_key = SECRET
    return fake_orq


@pytest.fixture(params=["orq", "orq-v2"])
def client(fake: FakeOrq, request: pytest.FixtureRequest) -> Client:
    """A client of the fake for each of orq's APIs (the router, the reference page's): every
    test that takes it is a contract test of both."""
    return Client(
        request.param, base_url=fake.url, api_key=SECRET, read_timeout=5, sleep=lambda _: None
    )


def write_file(path: Path, lines: int = 3, model: str = "openai/gpt-4o-mini") -> Path:
    with path.open("w") as handle:
        for number in range(lines):
            body = {"model": model, "messages": [{"role": "user", "content": f"q{number}"}]}
            request = {"custom_id": f"r{number}", "method": "POST", "url": CHAT, "body": body}
            handle.write(json.dumps(request) + "\n")
    return path


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    return write_file(tmp_path / "requests.jsonl")


# --- submit -----------------------------------------------------------------------------------


def test_submit_validates_uploads_and_creates(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    result = submit(batch_file, client=client, metadata={"run": "nightly-42"})
    digest = hashlib.sha256(batch_file.read_bytes()).hexdigest()
    assert result.sha256 == digest
    assert not result.reused and not result.dry_run
    assert result.report.valid and result.report.requests == 3
    assert result.file is not None and result.batch is not None
    assert result.batch.input_file_id == result.file.id
    assert result.batch.endpoint == CHAT
    assert result.batch.metadata == {"run": "nightly-42", HASH_KEY: digest}
    assert result.request == {
        "input_file_id": result.file.id,
        "endpoint": CHAT,
        "completion_window": "24h",
        "metadata": {"run": "nightly-42", HASH_KEY: digest},
    }
    assert [r.route for r in fake.requests] == ["list", "upload", "create"]
    assert result.to_dict()["batch"]["id"] == result.batch.id


def test_a_rerun_reuses_the_batch_without_uploading(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    first = submit(batch_file, client=client)
    second = submit(batch_file, client=client)
    assert second.reused and second.file is None
    assert second.batch is not None and first.batch is not None
    assert second.batch.id == first.batch.id
    assert len(fake.requests_to("upload")) == 1
    assert len(fake.state.batches) == 1


def test_force_submits_again(fake: FakeOrq, client: Client, batch_file: Path) -> None:
    submit(batch_file, client=client)
    again = submit(batch_file, client=client, force=True)
    assert not again.reused
    assert len(fake.requests_to("upload")) == 2
    assert len(fake.state.batches) == 2
    assert len(fake.requests_to("list")) == 1  # force does not even look


@pytest.mark.parametrize("status", ["failed", "expired", "cancelled", "cancelling"])
def test_a_dead_batch_is_not_reused(
    fake: FakeOrq, client: Client, batch_file: Path, status: str
) -> None:
    first = submit(batch_file, client=client)
    assert first.batch is not None
    fake.state.batches[first.batch.id]["status"] = status
    again = submit(batch_file, client=client)
    assert not again.reused
    assert len(fake.state.batches) == 2


def test_other_bytes_or_endpoint_are_not_reused(
    fake: FakeOrq, client: Client, batch_file: Path, tmp_path: Path
) -> None:
    first = submit(batch_file, client=client)
    assert first.batch is not None
    other = write_file(tmp_path / "other.jsonl", lines=4)
    assert not submit(other, client=client).reused
    fake.state.batches[first.batch.id]["endpoint"] = "/v1/embeddings"
    assert not submit(batch_file, client=client).reused
    assert len(fake.state.batches) == 3


def test_the_reuse_check_finds_a_batch_on_a_later_page(
    fake: FakeOrq, client: Client, batch_file: Path, tmp_path: Path
) -> None:
    first = submit(batch_file, client=client)
    assert first.file is not None
    other = write_file(tmp_path / "other.jsonl", lines=4)
    for _ in range(150):  # push the first batch to the second page of 100
        fake.state.create_batch({"input_file_id": first.file.id, "endpoint": "/v1/embeddings"})
    assert submit(batch_file, client=client).reused
    assert not submit(other, client=client).reused


def test_one_batch_despite_faults_everywhere(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    fake.faults.add("list", Fault.rate_limited(0), Fault.http(503))
    fake.faults.add("upload", Fault.http(500), Fault.drop())
    fake.faults.add("create", Fault.drop(after=True))
    result = submit(batch_file, client=client)
    assert result.batch is not None
    assert list(fake.state.batches) == [result.batch.id]
    assert len(fake.requests_to("create")) == 1


def test_an_invalid_file_sends_nothing(fake: FakeOrq, client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "method": "GET", "url": "/chat/completions", "body": {}}\n')
    with pytest.raises(InvalidInputError) as caught:
        submit(bad, client=client)
    report = caught.value.report
    assert report is not None and not report.valid  # type: ignore[attr-defined]
    assert "nothing was sent" in str(caught.value)
    assert caught.value.exit_code == 1
    assert fake.requests == []


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": "v" for i in range(17)}, "at most 16"),
        ({"k" * 65: "v"}, "65 characters"),
        ({"key": "v" * 513}, "513 characters"),
        ({"key": 5}, "must be a string"),
        ({HASH_KEY: "abc"}, "reserved"),
    ],
)
def test_metadata_limits_are_checked_before_any_request(
    fake: FakeOrq, client: Client, batch_file: Path, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        submit(batch_file, client=client, metadata=metadata)
    assert fake.requests == []


def test_metadata_at_the_limits_is_accepted(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    check_metadata({f"k{i:02d}": "v" for i in range(16)})
    metadata = {"k" * 64: "v" * 512, **{f"k{i:02d}": "v" for i in range(14)}}
    result = submit(batch_file, client=client, metadata=metadata)
    assert result.batch is not None and len(result.batch.metadata) == 16


def test_sixteen_pairs_of_metadata_are_sent_without_the_sha256(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    metadata = {f"k{i:02d}": "v" for i in range(16)}
    assert not has_room_for_sha256(metadata)
    result = submit(batch_file, client=client, metadata=metadata)
    assert result.batch is not None and result.batch.metadata == metadata
    assert result.rerun_detection is False and result.to_dict()["rerun_detection"] is False
    # The same file again is not recognised: that is what the CLI warns about.
    again = submit(batch_file, client=client, metadata=metadata)
    assert not again.reused and len(fake.state.batches) == 2
    fifteen = dict(list(metadata.items())[:15])
    kept = submit(batch_file, client=client, metadata=fifteen)
    assert kept.rerun_detection and kept.batch is not None
    assert kept.batch.metadata == {**fifteen, HASH_KEY: file_sha256(batch_file)}


def test_dry_run_makes_no_request_at_all(batch_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.delenv("ORQ_API_KEY", raising=False)  # and needs no key
    result = submit(batch_file, dry_run=True, metadata={"run": "1"})
    assert result.dry_run and result.batch is None and result.file is None
    assert result.request is not None
    assert result.request["endpoint"] == CHAT
    assert result.request["input_file_id"] is None
    assert result.request["metadata"] == {"run": "1", HASH_KEY: result.sha256}


def test_dry_run_with_a_client_sends_nothing(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    assert submit(batch_file, client=client, dry_run=True).dry_run
    assert fake.requests == []


def test_without_a_client_the_settings_come_from_the_environment(
    fake: FakeOrq, batch_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORQ_API_KEY", SECRET)
    monkeypatch.setenv("BATCHKIT_BASE_URL", fake.url)
    monkeypatch.delenv("BATCHKIT_PROFILE", raising=False)
    result = submit(batch_file)
    assert result.batch is not None
    assert fake.requests[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_file_sha256_streams_big_files(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 20_000  # about 5 MB: several chunks
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


# --- wait -------------------------------------------------------------------------------------


def test_wait_polls_with_backoff_until_completed(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    fake.state.steps_per_status = 2
    result = submit(batch_file, client=client)
    assert result.batch is not None
    clock = FakeClock()
    seen: list[str] = []
    final = wait_for_batch(
        client,
        result.batch.id,
        interval=1.0,
        max_interval=2.0,
        on_update=lambda batch: seen.append(batch.status),
        sleep=clock.sleep,
        clock=clock,
    )
    assert final.status == "completed" and final.output_file_id
    assert final.request_counts.completed == 3
    assert seen == ["validating", "in_progress", "in_progress", "completed"]
    assert clock.sleeps == [1.0, 1.5, 2.0]


def test_wait_returns_a_failed_batch(fake: FakeOrq, client: Client, batch_file: Path) -> None:
    fake.state.progression = ["validating", "failed"]
    result = submit(batch_file, client=client)
    assert result.batch is not None
    clock = FakeClock()
    final = wait_for_batch(client, result.batch.id, sleep=clock.sleep, clock=clock)
    assert final.status == "failed" and final.is_terminal


def test_wait_times_out(fake: FakeOrq, client: Client, batch_file: Path) -> None:
    fake.state.steps_per_status = 1000
    result = submit(batch_file, client=client)
    assert result.batch is not None
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as caught:
        wait_for_batch(
            client, result.batch.id, timeout=10, interval=3, sleep=clock.sleep, clock=clock
        )
    assert caught.value.exit_code == 5  # its own outcome: neither the API (3) nor the batch (4)
    assert isinstance(caught.value.batch, Batch)
    assert "validating" in str(caught.value)
    assert clock.now == 10  # the last sleep is cut to the time left
    assert clock.sleeps == [3, 4.5, 2.5]


def test_wait_with_a_real_clock(fake: FakeOrq, client: Client, batch_file: Path) -> None:
    result = submit(batch_file, client=client)
    assert result.batch is not None
    final = wait_for_batch(client, result.batch.id, timeout=5, interval=0.01)
    assert final.status == "completed"


def test_wait_rejects_a_zero_interval(client: Client) -> None:
    with pytest.raises(UsageError):
        wait_for_batch(client, "batch_1", interval=0)
