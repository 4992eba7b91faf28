"""``batchkit results`` and ``submit --wait -o`` as a user runs them: a real subprocess against
the fake orq API (every ending a batch can have), llmock and llama-stack.

What each test checks is what users get wrong by hand: every request appears exactly once,
in input order, with its own answer and status; the retry file holds exactly the input lines
that are worth sending again, byte for byte; and the exit code says whether all succeeded.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchkit.client import Client
from tests.helpers import CHAT, jsonl, request
from tests.servers.cli import clean_env, explain, json_out, run_batchkit
from tests.servers.fake_orq import FakeOrq, Outcome
from tests.servers.llama_stack import FAILING_MODEL, MODEL, LlamaStackServer
from tests.servers.llmock_prism import LlmockServer
from tests.test_client import SECRET, make_client

IDS = [f"req-{number}" for number in range(1, 9)]


@pytest.fixture
def fake(fake_orq: FakeOrq) -> FakeOrq:
    fake_orq.state.api_key = SECRET
    fake_orq.state.result_order = "shuffled"
    return fake_orq


@pytest.fixture
def client(fake: FakeOrq) -> Iterator[Client]:
    with make_client(fake) as made:
        yield made


@pytest.fixture
def batch_input(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    # Written as a person might: spaces after separators, so "byte for byte" means something.
    path.write_bytes(
        b"".join(
            orjson.dumps(request(custom_id)).replace(b'","', b'", "') + b"\n" for custom_id in IDS
        )
    )
    return path


def submitted(client: Client, batch_input: Path) -> str:
    uploaded = client.upload_file(batch_input)
    return client.create_batch(uploaded.id, CHAT).id


def results(fake: FakeOrq, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_batchkit(
        "results", *args, "--base-url", fake.url, env=env or clean_env(ORQ_API_KEY=SECRET)
    )


def rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def input_lines(batch_input: Path, numbers: list[int]) -> bytes:
    lines = batch_input.read_bytes().splitlines(keepends=True)
    return b"".join(lines[number - 1] for number in numbers)


OUTCOMES: dict[str, Outcome] = {
    "req-2": 500,
    "req-3": 429,
    "req-4": 400,
    "req-5": "failed",
    "req-6": "expired",
    "req-7": "missing",
}


def test_completed_batch_in_shuffled_order(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed", OUTCOMES)
    out, retry = tmp_path / "results.jsonl", tmp_path / "retry.jsonl"
    done = results(fake, batch_id, "--input", str(batch_input), "-o", str(out),
                   "--retry-file", str(retry))  # fmt: skip
    assert done.returncode == 4, explain(done)
    got = rows(out)
    assert [row["custom_id"] for row in got] == IDS
    assert [row["line"] for row in got] == list(range(1, 9))
    assert [row["status"] for row in got] == [
        "succeeded", "failed", "failed", "failed", "failed", "expired", "missing", "succeeded",
    ]  # fmt: skip
    assert [row["status_code"] for row in got[:4]] == [200, 500, 429, 400]
    assert got[0]["body"]["choices"]
    # 500, 429, no status, expired, missing: worth a retry; the 400 would fail again.
    assert retry.read_bytes() == input_lines(batch_input, [2, 3, 5, 6, 7])
    assert "2 succeeded, 4 failed, 1 expired, 1 missing" in done.stderr
    assert "wrote" in done.stderr and str(retry) in done.stderr
    again = results(fake, batch_id, "--input", str(batch_input), "-o", str(out),
                    "--retry-file", str(retry), "--retry-all")  # fmt: skip
    assert again.returncode == 4, explain(again)
    assert retry.read_bytes() == input_lines(batch_input, [2, 3, 4, 5, 6, 7])


@pytest.mark.parametrize("status", ["expired", "cancelled"])
def test_a_batch_that_ended_early_keeps_its_partial_results(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path, status: str
) -> None:
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, status, {"req-1": "succeeded", "req-4": "succeeded",
                                             "req-8": "missing"})  # fmt: skip
    out, retry = tmp_path / "results.jsonl", tmp_path / "retry.jsonl"
    done = results(fake, batch_id, "--input", str(batch_input), "-o", str(out),
                   "--retry-file", str(retry), "--format", "json")  # fmt: skip
    assert done.returncode == 4, explain(done)
    document = json_out(done)
    assert document["status"] == status
    assert document["summary"]["counts"]["succeeded"] == 2
    assert document["summary"]["counts"][status] == 5
    assert document["summary"]["counts"]["missing"] == 1
    statuses = {row["custom_id"]: row["status"] for row in rows(out)}
    assert statuses["req-1"] == statuses["req-4"] == "succeeded"
    assert statuses["req-8"] == "missing"
    assert retry.read_bytes() == input_lines(batch_input, [2, 3, 5, 6, 7, 8])


def test_everything_failed_and_there_is_no_output_file(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed", dict.fromkeys(IDS, 503))
    assert fake.state.batches[batch_id]["output_file_id"] is None
    out, retry = tmp_path / "results.csv", tmp_path / "retry.jsonl"
    done = results(fake, batch_id, "--input", str(batch_input), "-o", str(out),
                   "--retry-file", str(retry))  # fmt: skip
    assert done.returncode == 4, explain(done)
    with out.open(encoding="utf-8-sig", newline="") as stream:
        table = list(csv.DictReader(stream))
    assert [(row["custom_id"], row["status"], row["status_code"]) for row in table] == [
        (custom_id, "failed", "503") for custom_id in IDS
    ]
    assert retry.read_bytes() == batch_input.read_bytes()


def test_all_succeeded_with_an_empty_error_file_exits_0_and_removes_a_stale_retry_file(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    fake.state.empty_error_file = True
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed")
    out, retry = tmp_path / "results.jsonl", tmp_path / "retry.jsonl"
    retry.write_bytes(input_lines(batch_input, [1]))  # left by an earlier run
    done = results(fake, batch_id, "--input", str(batch_input), "-o", str(out),
                   "--retry-file", str(retry))  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert [row["status"] for row in rows(out)] == ["succeeded"] * 8
    assert not retry.exists()
    assert "nothing to retry" in done.stderr


def test_without_the_input_every_answer_once(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed", {"req-7": "missing", "req-2": 500})
    out = tmp_path / "results.jsonl"
    done = results(fake, batch_id, "-o", str(out))
    assert done.returncode == 4, explain(done)
    got = rows(out)
    assert sorted(row["custom_id"] for row in got) == sorted(set(IDS) - {"req-7"})
    assert {row["line"] for row in got} == {None}


def test_an_unfinished_batch_is_exit_2_and_wait_waits(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    fake.state.steps_per_status = 3
    batch_id = submitted(client, batch_input)
    out = tmp_path / "results.jsonl"
    early = results(fake, batch_id, "-o", str(out))
    assert early.returncode == 2, explain(early)
    assert "has not finished: it is validating" in early.stderr
    assert f"batchkit wait {batch_id}" in early.stderr
    assert not out.exists()
    waited = results(fake, batch_id, "-o", str(out), "--wait", "--interval", "0.05")
    assert waited.returncode == 0, explain(waited)
    assert len(rows(out)) == 8


def test_bad_input_gets_a_clear_message_and_the_right_exit_code(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed")
    out = tmp_path / "results.jsonl"
    cases = {
        "no input for the retry file": (["-o", str(out), "--retry-file", "r.jsonl"], 2, "--input"),
        "a results name it cannot write": (["-o", str(tmp_path / "r.txt")], 2, ".jsonl"),
        "an input that is not there": (["--input", "nope.jsonl", "-o", str(out)], 2, "nope"),
    }
    for name, (args, code, words) in cases.items():
        done = results(fake, batch_id, *args)
        assert done.returncode == code, f"{name}: {explain(done)}"
        assert words in done.stderr and "Traceback" not in done.stderr, name
    assert fake.requests_to("retrieve") == []  # refused before any request
    unknown = results(fake, "batch_nope", "-o", str(out))
    denied = results(fake, batch_id, "-o", str(out), env=clean_env(ORQ_API_KEY=SECRET + "x"))
    assert (unknown.returncode, denied.returncode) == (3, 3), explain(unknown) + explain(denied)
    for done in (unknown, denied):
        assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout
    assert list(tmp_path.glob("*.jsonl")) == [batch_input]  # nothing half-written


def test_a_results_file_that_is_not_jsonl_is_refused_and_nothing_is_written(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed")
    fake.state.set_result_files(batch_id, b"<html><body>502 Bad Gateway</body></html>\n", None)
    out = tmp_path / "results.jsonl"
    done = results(fake, batch_id, "--input", str(batch_input), "-o", str(out))
    assert done.returncode == 1, explain(done)
    assert "is not a batch results file" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_submit_wait_writes_the_results(fake: FakeOrq, batch_input: Path, tmp_path: Path) -> None:
    fake.state.outcomes = {"req-3": 500}
    out, retry = tmp_path / "results.jsonl", tmp_path / "retry.jsonl"
    done = run_batchkit(
        "submit", str(batch_input), "--base-url", fake.url, "--wait", "--interval", "0.05",
        "-o", str(out), "--retry-file", str(retry), "--format", "json",
        env=clean_env(ORQ_API_KEY=SECRET),
    )  # fmt: skip
    assert done.returncode == 4, explain(done)
    document = json_out(done)
    assert document["results"]["summary"]["counts"]["failed"] == 1
    assert [row["custom_id"] for row in rows(out)] == IDS
    assert retry.read_bytes() == input_lines(batch_input, [3])
    refused = run_batchkit("submit", str(batch_input), "--base-url", fake.url, "-o", str(out),
                           env=clean_env(ORQ_API_KEY=SECRET))  # fmt: skip
    assert refused.returncode == 2 and "needs --wait" in refused.stderr


# --- real servers ------------------------------------------------------------------------


def build_submit_wait(base_url: str, model: str, tmp_path: Path, count: int) -> tuple[Path, str]:
    """``batchkit build`` then ``submit --wait`` against an OpenAI-style server."""
    tmp_path.mkdir(exist_ok=True)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(
        jsonl(*({"messages": [{"role": "user", "content": f"Q{n} ☃"}]} for n in range(count)))
    )
    batch = tmp_path / "batch.jsonl"
    env = clean_env(OPENAI_API_KEY="sk-test-key-123456")
    built = run_batchkit("build", str(prompts), "--endpoint", CHAT, "--model", model,
                         "-o", str(batch), env=env)  # fmt: skip
    assert built.returncode == 0, explain(built)
    sent = run_batchkit("submit", str(batch), "--profile", "openai", "--base-url", base_url,
                        "--wait", "--interval", "0.5", "--format", "json", env=env)  # fmt: skip
    assert sent.returncode == 0, explain(sent)
    return batch, json_out(sent)["batch_id"]


def openai_results(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(OPENAI_API_KEY="sk-test-key-123456")
    return run_batchkit("results", *args, "--profile", "openai", "--base-url", base_url, env=env)


@pytest.mark.llmock
def test_llmock_end_to_end(llmock_server: LlmockServer, tmp_path: Path) -> None:
    batch, batch_id = build_submit_wait(llmock_server.openai_base_url, "gpt-4o-mini", tmp_path, 30)
    out = tmp_path / "results.jsonl"
    done = openai_results(llmock_server.openai_base_url, batch_id, "--input", str(batch),
                          "-o", str(out))  # fmt: skip
    assert done.returncode == 0, explain(done)
    got = rows(out)
    assert [row["custom_id"] for row in got] == [f"request-{n:06d}" for n in range(1, 31)]
    assert all(row["status"] == "succeeded" and row["usage"] for row in got)


@pytest.mark.llmock
@pytest.mark.llama_stack
def test_llama_stack_end_to_end(llama_stack_server: LlamaStackServer, tmp_path: Path) -> None:
    base = llama_stack_server.openai_base_url
    good, good_id = build_submit_wait(base, MODEL, tmp_path / "good", 12)
    bad, bad_id = build_submit_wait(base, FAILING_MODEL, tmp_path / "bad", 5)
    out, retry = tmp_path / "good.jsonl", tmp_path / "retry.jsonl"
    done = openai_results(base, good_id, "--input", str(good), "-o", str(out))
    assert done.returncode == 0, explain(done)
    assert [row["status"] for row in rows(out)] == ["succeeded"] * 12
    assert isinstance(rows(out)[0]["body"], dict)  # llama-stack sends it as a JSON string
    failed = openai_results(base, bad_id, "--input", str(bad), "-o", str(out),
                            "--retry-file", str(retry))  # fmt: skip
    assert failed.returncode == 4, explain(failed)
    assert [row["status"] for row in rows(out)] == ["failed"] * 5
    assert rows(out)[0]["error"]["code"] == "request_failed"
    assert retry.read_bytes() == bad.read_bytes()


def test_text_from_the_server_is_printed_escaped(
    fake: FakeOrq, client: Client, batch_input: Path, tmp_path: Path
) -> None:
    """An error code, message or custom_id from the files must not start a new line (or a
    GitHub annotation) in what batchkit prints."""
    batch_id = submitted(client, batch_input)
    fake.state.end_batch(batch_id, "completed")
    hostile = {
        "custom_id": "req-1\n::error::forged",
        "response": {"status_code": 500, "body": {"error": {"code": "x\n::error::pwned"}}},
    }
    fake.state.set_result_files(batch_id, jsonl(hostile), None)
    done = results(fake, batch_id, "--input", str(batch_input), "-o", str(tmp_path / "r.jsonl"))
    assert done.returncode == 4, explain(done)
    assert not any(line.startswith("::") for line in done.stderr.splitlines()), done.stderr
    assert "x\\n::error::pwned" in done.stderr
