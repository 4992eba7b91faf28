"""End to end against llama-stack, a real and independent implementation of the OpenAI Files
and Batches APIs (tests/servers/llama_stack.py), with the ``llama-stack`` profile and no key at
all: the library (build_batch, submit, wait_for_batch, Client) and the CLI as a real subprocess.

Each batch gets custom_ids of its own, so its file's sha256 is unique and ``submit`` never
reuses another test's batch.  llama-stack runs one batch at a time, 10 requests at a time.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from batchkit import build_batch
from batchkit.client import Batch, Client
from batchkit.submit import submit, wait_for_batch
from tests.helpers import CHAT, jsonl, request
from tests.servers.cli import batch_file, clean_env, explain, json_out, run_batchkit
from tests.servers.llama_stack import FAILING_MODEL, MODEL, LlamaStackServer

# llama-stack needs an llmock upstream; it is excluded with the llmock suites (a marker of its
# own, `llama_stack`, needs a line in pyproject.toml's markers).
pytestmark = [pytest.mark.llmock, pytest.mark.llama_stack]

#: llama-stack checks no key, but batchkit sends one as it would to any server.
KEY = "sk-llama-stack-test-key-0123456789"
BATCH_DEADLINE = 60.0


@dataclass(frozen=True)
class FinishedBatch:
    batch: Batch
    custom_ids: list[str]


def make_client(server: LlamaStackServer) -> Client:
    """The ``llama-stack`` profile, with no key at all: the server needs none."""
    return Client("llama-stack", base_url=server.openai_base_url)


def run_batch(
    server: LlamaStackServer, directory: Path, *, model: str, count: int
) -> FinishedBatch:
    """build_batch -> submit -> wait_for_batch, as a user of the library would."""
    tag = uuid.uuid4().hex[:12]
    built = build_batch(
        (
            {"messages": [{"role": "user", "content": f"Question {index}?"}]}
            for index in range(count)
        ),
        endpoint=CHAT,
        model=model,
        output=directory / f"{tag}.jsonl",
        custom_id=lambda index, _body: f"{tag}-{index}",
    )
    with make_client(server) as client:
        submitted = submit(built.files[0], client=client)
        assert submitted.batch is not None and not submitted.reused
        batch = wait_for_batch(
            client, submitted.batch.id, timeout=BATCH_DEADLINE, interval=0.2, max_interval=1.0
        )
    return FinishedBatch(batch, [f"{tag}-{index}" for index in range(count)])


def file_lines(server: LlamaStackServer, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id, "the batch names no such file"
    with make_client(server) as client:
        content = client.file_content(file_id)
    return [orjson.loads(line) for line in content.splitlines()]


@pytest.fixture(scope="module")
def completed(
    llama_stack_server: LlamaStackServer, tmp_path_factory: pytest.TempPathFactory
) -> FinishedBatch:
    return run_batch(llama_stack_server, tmp_path_factory.mktemp("ok"), model=MODEL, count=20)


@pytest.fixture(scope="module")
def all_failed(
    llama_stack_server: LlamaStackServer, tmp_path_factory: pytest.TempPathFactory
) -> FinishedBatch:
    """Every request answered 500 by the upstream (an llmock with ``--error-rate 500=1``)."""
    return run_batch(
        llama_stack_server, tmp_path_factory.mktemp("fail"), model=FAILING_MODEL, count=5
    )


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port``, from /proc (no traffic)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_listens_on_loopback_only(llama_stack_server: LlamaStackServer) -> None:
    port = int(llama_stack_server.url.rsplit(":", 1)[1])
    # 127.0.0.1 as /proc writes it (little-endian hex); 0.0.0.0 would be 00000000.
    assert listening_addresses(port) == {"0100007F"}


def test_completed_batch_has_every_custom_id_once_in_its_output(
    llama_stack_server: LlamaStackServer, completed: FinishedBatch
) -> None:
    batch = completed.batch
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed) == (20, 20)
    assert batch.request_counts.failed == 0

    output = file_lines(llama_stack_server, batch.output_file_id)
    assert Counter(line["custom_id"] for line in output) == Counter(completed.custom_ids)
    for line in output:
        assert line["response"]["status_code"] == 200
        assert "error" not in line  # llama-stack leaves it out rather than writing null
        # The body is a JSON string, to be decoded again (CONTRACT.md section 6).
        body = orjson.loads(line["response"]["body"])
        assert body["object"] == "chat.completion"
        assert body["model"] == MODEL
        assert body["choices"][0]["message"]["content"]

    # The error file exists even when nothing failed, and is empty.
    assert file_lines(llama_stack_server, batch.error_file_id) == []


def test_batch_whose_every_request_fails_upstream_completes_with_all_failed(
    llama_stack_server: LlamaStackServer, all_failed: FinishedBatch
) -> None:
    """Not ``failed``: that status is for a batch refused as a whole.  The output file exists
    and is empty; each request has an error line with no ``response`` and no ``code``."""
    batch = all_failed.batch
    assert batch.status == "completed"
    counts = batch.request_counts
    assert (counts.total, counts.completed, counts.failed) == (5, 0, 5)
    assert batch.errors == []

    assert file_lines(llama_stack_server, batch.output_file_id) == []
    errors = file_lines(llama_stack_server, batch.error_file_id)
    assert Counter(line["custom_id"] for line in errors) == Counter(all_failed.custom_ids)
    for line in errors:
        assert set(line) == {"id", "custom_id", "error"}
        assert line["error"]["type"] == "request_failed"
        assert "Error code: 500" in line["error"]["message"]


def test_server_refuses_to_cancel_a_finished_batch_with_409(
    llama_stack_server: LlamaStackServer, completed: FinishedBatch
) -> None:
    """What the client has to cope with (OpenAI says 400 here, orq answers the batch)."""
    url = f"{llama_stack_server.openai_base_url}/batches/{completed.batch.id}/cancel"
    answer = requests.post(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert answer.status_code == 409
    assert "Cannot cancel batch" in answer.json()["error"]["message"]


def test_cancel_of_a_finished_batch_shows_it_as_it_is(
    llama_stack_server: LlamaStackServer, completed: FinishedBatch
) -> None:
    with make_client(llama_stack_server) as client:
        batch = client.cancel_batch(completed.batch.id)
    assert (batch.id, batch.status) == (completed.batch.id, "completed")
    assert batch.request_counts.completed == 20


def cli_api(server: LlamaStackServer) -> list[str]:
    return ["--profile", "llama-stack", "--base-url", server.openai_base_url]


def cli_env() -> dict[str, str]:
    """No key anywhere: the ``llama-stack`` profile needs none."""
    return clean_env()


def test_cli_submit_wait_status_list_cancel(
    llama_stack_server: LlamaStackServer, tmp_path: Path
) -> None:
    path = batch_file(tmp_path, count=3)
    api, env = cli_api(llama_stack_server), cli_env()

    submitted = run_batchkit("submit", str(path), *api, "--format", "json", env=env)
    assert submitted.returncode == 0, explain(submitted)
    batch_id = json_out(submitted)["batch_id"]
    assert json_out(submitted)["batch"]["status"] == "validating"

    waited = run_batchkit("wait", batch_id, *api, "--interval", "0.2", "--timeout", "1m", env=env)
    assert waited.returncode == 0, explain(waited)
    assert waited.stdout.startswith(f"{batch_id} completed: 3 completed, 0 failed; output file-")

    status = run_batchkit("status", batch_id, *api, "--format", "json", env=env)
    assert status.returncode == 0, explain(status)
    assert json_out(status)["request_counts"] == {"total": 3, "completed": 3, "failed": 0}

    listed = run_batchkit("list", *api, "--limit", "100", "--format", "json", env=env)
    assert listed.returncode == 0, explain(listed)
    assert batch_id in [item["id"] for item in json_out(listed)["data"]]

    cancelled = run_batchkit("cancel", batch_id, *api, env=env)
    assert cancelled.returncode == 0, explain(cancelled)
    # The server answers 409; the finished batch is shown as it is (the wording on stderr is
    # the CLI suite's business).
    assert cancelled.stdout.startswith(f"{batch_id}: completed (3/3 requests)")

    # llama-stack keeps the metadata, so a re-run finds the batch by the file's sha256.
    again = run_batchkit("submit", str(path), *api, env=env)
    assert again.returncode == 0, explain(again)
    assert again.stdout.startswith(f"reusing batch {batch_id} (completed)")


def test_cli_wait_shows_a_batch_refused_by_the_server_with_its_lines(
    llama_stack_server: LlamaStackServer, tmp_path: Path
) -> None:
    """An unknown model passes batchkit's checks (model names are never checked) but not
    llama-stack's: the batch fails as a whole, and ``--wait`` prints each line's error."""
    path = tmp_path / "unknown-model.jsonl"
    tag = uuid.uuid4().hex[:12]
    unknown = "openai/no-such-model"
    body = {"model": unknown, "messages": [{"role": "user", "content": "Hello"}]}
    path.write_bytes(jsonl(*(request(f"{tag}-{index}", body) for index in range(2))))

    result = run_batchkit(
        "submit",
        str(path),
        *cli_api(llama_stack_server),
        "--wait",
        "--interval",
        "0.2",
        "--timeout",
        "1m",
        env=cli_env(),
    )
    assert result.returncode == 4, explain(result)
    for line in (1, 2):
        assert f"{path}:{line}: model_not_found: Model '{unknown}' does not exist" in result.stdout
    assert "ended failed with 2 error(s)" in result.stderr
    assert "Traceback" not in result.stderr
