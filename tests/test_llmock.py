"""End to end against llmock (a stateful OpenAI-style Files + Batches server) with the
``openai`` profile: the real CLI in a subprocess, then llmock's own verdict on the client.

llmock keeps every batch for the life of the server, so each test writes a file of its own
(unique custom_ids, hence a unique sha256) and finds its batches by that hash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchkit.client import Client
from batchkit.submit import HASH_KEY, file_sha256
from tests.servers.cli import batch_file, clean_env, explain, json_out, run_batchkit
from tests.servers.llmock_prism import LlmockServer

pytestmark = pytest.mark.llmock

KEY = "sk-llmock-test-key-0123456789"
#: `submit --wait` as these tests use it: llmock finishes a batch in about 3 s.
WAIT = ("--wait", "--interval", "0.2", "--timeout", "2m")


def api_args(server: LlmockServer) -> list[str]:
    return ["--profile", "openai", "--base-url", server.openai_base_url]


def env() -> dict[str, str]:
    return clean_env(OPENAI_API_KEY=KEY)


def batches_with_hash(server: LlmockServer, sha256: str) -> list[str]:
    with Client("openai", base_url=server.openai_base_url, api_key=KEY, max_attempts=10) as c:
        return [b.id for b in c.iter_batches(page_size=100) if b.metadata.get(HASH_KEY) == sha256]


def test_submit_wait_status_list_end_to_end(llmock_server: LlmockServer, tmp_path: Path) -> None:
    path = batch_file(tmp_path, count=3)
    api = api_args(llmock_server)

    submitted = run_batchkit(
        "submit", str(path), *api, "--metadata", "run=e2e", "--format", "json", env=env()
    )
    assert submitted.returncode == 0, explain(submitted)
    document = json_out(submitted)
    batch_id = document["batch_id"]
    assert document["reused"] is False
    assert document["batch"]["metadata"] == {"run": "e2e", HASH_KEY: file_sha256(path)}
    assert document["file_id"] == document["batch"]["input_file_id"]

    waited = run_batchkit("wait", batch_id, *api, "--interval", "0.2", "--timeout", "2m", env=env())
    assert waited.returncode == 0, explain(waited)
    assert waited.stdout.startswith(f"{batch_id} completed: 3 completed, 0 failed; output ")

    status = run_batchkit("status", batch_id, *api, "--format", "json", env=env())
    assert status.returncode == 0, explain(status)
    final = json_out(status)
    assert final["status"] == "completed"
    assert final["request_counts"] == {"total": 3, "completed": 3, "failed": 0}

    text_status = run_batchkit("status", batch_id, *api, env=env())
    assert text_status.stdout.splitlines()[0] == f"{batch_id}: completed (3/3 requests)"

    listed = run_batchkit("list", *api, "--limit", "100", "--format", "json", env=env())
    assert listed.returncode == 0, explain(listed)
    assert batch_id in [item["id"] for item in json_out(listed)["data"]]

    # The output file holds one answer per custom_id.
    with Client("openai", base_url=llmock_server.openai_base_url, api_key=KEY) as client:
        output = client.file_content(final["output_file_id"]).decode()
    ids = {line.split('"custom_id":')[1].split('"')[1] for line in output.splitlines() if line}
    expected = {
        line.split('"custom_id":"')[1].split('"')[0] for line in path.read_text().splitlines()
    }
    assert ids == expected

    # A second run of the same file finds the batch instead of uploading again.
    again = run_batchkit("submit", str(path), *api, "--metadata", "run=e2e", env=env())
    assert again.returncode == 0, explain(again)
    assert again.stdout.startswith(f"reusing batch {batch_id} (completed)")
    assert batches_with_hash(llmock_server, file_sha256(path)) == [batch_id]


def test_submit_wait_in_one_command(llmock_server: LlmockServer, tmp_path: Path) -> None:
    path = batch_file(tmp_path, count=2)
    result = run_batchkit("submit", str(path), *api_args(llmock_server), *WAIT, env=env())
    assert result.returncode == 0, explain(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uploaded file-") and "created batch batch_" in lines[0]
    assert " completed: 2 completed, 0 failed" in lines[-1]
    assert f"validated {path}: 2 requests" in result.stderr


def test_cancel_then_wait_exits_4(llmock_server: LlmockServer, tmp_path: Path) -> None:
    path = batch_file(tmp_path)
    api = api_args(llmock_server)
    submitted = run_batchkit("submit", str(path), *api, "--format", "json", env=env())
    assert submitted.returncode == 0, explain(submitted)
    batch_id = json_out(submitted)["batch_id"]

    cancelled = run_batchkit("cancel", batch_id, *api, "--format", "json", env=env())
    assert cancelled.returncode == 0, explain(cancelled)
    assert json_out(cancelled)["status"] in {"cancelling", "cancelled"}

    waited = run_batchkit("wait", batch_id, *api, "--interval", "0.2", env=env())
    assert waited.returncode == 4, explain(waited)
    assert "cancelled" in waited.stdout
    assert f"batch {batch_id} ended cancelled" in waited.stderr

    # A cancelled batch does not count as "already submitted": the next submit makes a new one.
    again = run_batchkit("submit", str(path), *api, "--format", "json", env=env())
    assert again.returncode == 0, explain(again)
    assert json_out(again)["reused"] is False
    assert json_out(again)["batch_id"] != batch_id


def test_cancel_of_a_finished_batch_shows_it_and_exits_0(
    llmock_server: LlmockServer, tmp_path: Path
) -> None:
    """llmock refuses to cancel a finished batch with a 400 ("already in terminal status"), as
    OpenAI does: batchkit shows the batch as it is, as its help says."""
    api = api_args(llmock_server)
    path = str(batch_file(tmp_path))
    submitted = run_batchkit("submit", path, *api, *WAIT, "--format", "json", env=env())
    assert submitted.returncode == 0, explain(submitted)
    batch_id = json_out(submitted)["batch_id"]

    cancelled = run_batchkit("cancel", batch_id, *api, env=env())
    assert cancelled.returncode == 0, explain(cancelled)
    assert cancelled.stdout == f"{batch_id}: completed (3/3 requests)\n"
    assert "had already ended (completed): nothing to cancel" in cancelled.stderr
    as_json = run_batchkit("cancel", batch_id, *api, "--format", "json", env=env())
    assert as_json.returncode == 0, explain(as_json)
    assert json_out(as_json)["status"] == "completed"


def test_unknown_batch_is_an_api_error(llmock_server: LlmockServer) -> None:
    result = run_batchkit("status", "batch_does_not_exist", *api_args(llmock_server), env=env())
    assert result.returncode == 3, explain(result)
    assert result.stderr.startswith("batchkit: error: ")
    assert "404" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_injected_429s_and_503s_one_batch_and_a_clean_verdict(
    llmock_faulty_server: LlmockServer, tmp_path: Path
) -> None:
    """20 % 429s and 20 % 503s on every call: the run still ends with exactly one batch, and
    llmock finds nothing to blame (Retry-After honoured, no storm, no retry of a 4xx, no
    request given up without a retry)."""
    server = llmock_faulty_server
    server.reset_journal()
    path = batch_file(tmp_path, count=4)
    # 10 attempts per call (llmock calls more a storm): the chance that 10 in a row fail at
    # 40 % is 1e-4 per call, so the test does not flake.
    api = [*api_args(server), "--max-attempts", "10"]

    result = run_batchkit(
        "submit",
        str(path),
        *api,
        "--wait",
        "--interval",
        "0.2",
        "--timeout",
        "5m",
        "--format",
        "json",
        env=env(),
    )
    assert result.returncode == 0, explain(result)
    document = json_out(result)
    assert document["batch"]["status"] == "completed"
    assert document["batch"]["request_counts"]["total"] == 4

    assert batches_with_hash(server, file_sha256(path)) == [document["batch_id"]]

    verdict = server.report(strict=True)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
