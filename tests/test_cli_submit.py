"""``batchkit submit``, ``status``, ``list``, ``cancel`` and ``wait`` against the fake orq API.

Most cases run in-process through click's CliRunner (fast, many of them); the ones where the
process boundary matters (exit codes seen by a shell, Ctrl-C, the key in a real stderr) run
``python -m batchkit`` as a subprocess.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from batchkit.cli.main import cli
from batchkit.cli.waiting import parse_duration
from batchkit.submit import HASH_KEY, file_sha256
from tests.helpers import CHAT, jsonl, request
from tests.servers.cli import batch_file, clean_env, explain, run_batchkit
from tests.servers.fake_orq import FakeOrq, Fault

SECRET = "sk-orq-CLI-S3CRET-9d2b7e41"


@pytest.fixture
def orq() -> Iterator[FakeOrq]:
    with FakeOrq() as server:
        server.state.api_key = SECRET
        yield server


@pytest.fixture(params=[None, "orq-v2"], ids=["orq", "orq-v2"])
def env(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str | None]:
    """The environment for CliRunner: the key set, every other setting unset but the profile:
    none (the router API, the default) or ``orq-v2``, so that every test that takes it runs
    against both of orq's APIs."""
    return {
        "ORQ_API_KEY": SECRET,
        "OPENAI_API_KEY": None,
        "BATCHKIT_PROFILE": request.param,
        "BATCHKIT_BASE_URL": None,
        "GITHUB_OUTPUT": None,
        "NO_COLOR": "1",
    }


def invoke(orq: FakeOrq, env: dict[str, str | None], *args: str, **extra: str | None) -> Result:
    """``batchkit ARGS --base-url FAKE`` in-process, with retries kept short."""
    command = [*args, "--base-url", orq.url, "--connect-timeout", "2", "--read-timeout", "5"]
    return CliRunner().invoke(cli, command, env={**env, **extra}, catch_exceptions=False)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def submitted_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


# --- submit ---------------------------------------------------------------------------------


def test_submit_text_output(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path) -> None:
    path = batch_file(tmp_path, count=3)
    result = invoke(orq, env, "submit", str(path), "--metadata", "run=nightly-42")
    assert result.exit_code == 0, result.output
    (batch,) = orq.state.batches.values()
    (stored,) = [f for f in orq.state.files.values() if f.purpose == "batch"]
    assert result.stdout == f"uploaded {stored.id}   created batch {batch['id']} (validating)\n"
    assert result.stderr.startswith(f"validated {path}: 3 requests, ")
    assert result.stderr.rstrip().endswith(CHAT)
    assert batch["metadata"] == {"run": "nightly-42", HASH_KEY: file_sha256(path)}
    assert batch["endpoint"] == CHAT


def test_submit_json_and_github_output(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    path = batch_file(tmp_path)
    outputs = tmp_path / "github_output"
    outputs.write_text("earlier=kept\n")
    result = invoke(orq, env, "submit", str(path), "--format", "json", GITHUB_OUTPUT=str(outputs))
    document = submitted_json(result)
    (batch,) = orq.state.batches.values()
    assert document["batch"]["id"] == document["batch_id"] == batch["id"]
    assert document["batch"]["x_fake_extra"] == {"kept": True}  # the raw object, unknowns kept
    assert document["reused"] is False and document["dry_run"] is False
    assert document["file_id"] == batch["input_file_id"]
    assert document["sha256"] == file_sha256(path)
    assert document["validation"]["valid"] is True
    assert outputs.read_text() == (
        f"earlier=kept\nbatch_id={batch['id']}\nfile_id={batch['input_file_id']}\n"
        "reused=false\nstatus=validating\n"
    )
    assert result.stderr == ""  # json: no messages, no progress


def test_rerun_reuses_the_batch_and_force_submits_again(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    path = batch_file(tmp_path)
    first = submitted_json(invoke(orq, env, "submit", str(path), "--format", "json"))
    outputs = tmp_path / "out"
    again = invoke(orq, env, "submit", str(path), GITHUB_OUTPUT=str(outputs))
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"reusing batch {first['batch_id']} (validating): same sha256")
    assert len(orq.requests_to("upload")) == 1 and len(orq.state.batches) == 1
    assert "reused=true" in outputs.read_text()
    assert f"batch_id={first['batch_id']}" in outputs.read_text()

    forced = submitted_json(invoke(orq, env, "submit", str(path), "--force", "--format", "json"))
    assert forced["reused"] is False and forced["batch_id"] != first["batch_id"]
    assert len(orq.state.batches) == 2


def test_dry_run_sends_nothing_and_needs_no_key(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    path = batch_file(tmp_path)
    result = invoke(
        orq, {**env, "ORQ_API_KEY": None}, "submit", str(path), "--dry-run", "--metadata", "a=b"
    )
    assert result.exit_code == 0, result.output
    assert orq.requests == []
    assert "nothing was sent" in result.stdout
    assert f'"{HASH_KEY}": "{file_sha256(path)}"' in result.stdout
    as_json = submitted_json(invoke(orq, env, "submit", str(path), "--dry-run", "--format", "json"))
    assert as_json["dry_run"] is True and as_json["batch"] is None
    assert as_json["request"]["endpoint"] == CHAT
    assert orq.requests == []


def test_invalid_file_exits_1_and_sends_nothing(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl(request("a"), request("b", url="/chat/completions"), b"{not json"))
    result = invoke(orq, env, "submit", str(path))
    assert result.exit_code == 1
    assert orq.requests == []
    assert f"{path}:2: invalid_url: " in result.stdout
    assert f"{path}:3: invalid_json_line: " in result.stdout
    assert result.stderr.splitlines()[-1] == f"batchkit: error: {path} is invalid: nothing was sent"

    as_json = invoke(orq, env, "submit", str(path), "--format", "json")
    assert as_json.exit_code == 1
    document = orjson.loads(as_json.stdout)
    assert document["batch"] is None
    assert [e["line"] for e in document["validation"]["errors"]] == [2, 3]


def test_limit_overrides_apply(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path) -> None:
    path = batch_file(tmp_path, count=3)
    result = invoke(orq, env, "submit", str(path), "--max-requests", "2")
    assert result.exit_code == 1
    assert "too_many_tasks" in result.stdout
    assert orq.requests == []


@pytest.mark.parametrize(
    "args",
    [
        ["--metadata", "no-equals-sign"],
        ["--metadata", "=value"],
        ["--timeout", "soon"],
        ["--interval", "0"],
        ["--endpoint", "/v1/unknown"],
        ["--format", "xml"],
        ["--max-requests", "0"],
        ["--profile", "nope"],
        ["--max-attempts", "0"],
        ["--max-attempts", "11"],
    ],
)
def test_usage_errors_exit_2(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path, args: list[str]
) -> None:
    result = invoke(orq, env, "submit", str(batch_file(tmp_path)), *args)
    assert result.exit_code == 2, result.output
    assert orq.requests == []


def test_missing_file_is_a_usage_error(orq: FakeOrq, env: dict[str, str | None]) -> None:
    assert invoke(orq, env, "submit", "/nonexistent/requests.jsonl").exit_code == 2


def test_plain_http_to_a_remote_host_is_refused(env: dict[str, str | None], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["status", "batch_1", "--base-url", "http://api.example.com"], env=env
    )
    assert result.exit_code == 2
    assert "--allow-insecure-http" in result.stderr


def test_wrong_key_exits_3_without_showing_any_key(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    orq.state.api_key = "sk-the-server-wants-another"
    result = invoke(orq, env, "submit", str(batch_file(tmp_path)), "-v")
    assert result.exit_code == 3
    assert "ORQ_API_KEY" in result.stderr
    assert "401" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def test_no_key_exits_2_naming_the_variable(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    result = invoke(orq, {**env, "ORQ_API_KEY": None}, "submit", str(batch_file(tmp_path)))
    assert result.exit_code == 2
    assert "ORQ_API_KEY" in result.stderr
    assert orq.requests == []


def test_api_key_file(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    result = invoke(orq, {**env, "ORQ_API_KEY": "wrong"}, "list", "--api-key-file", str(key_file))
    assert result.exit_code == 0, result.output


def test_server_error_body_is_one_line_exit_3(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    body = {"error": {"code": "invalid_request", "message": "endpoint not allowed", "param": "x"}}
    orq.faults.add("create", Fault.http(400, body))
    result = invoke(orq, env, "submit", str(batch_file(tmp_path)))
    assert result.exit_code == 3
    validated, line = result.stderr.splitlines()  # the progress message, then the one error
    assert validated.startswith("validated ")
    assert line.startswith("batchkit: error: ") and "endpoint not allowed" in line
    assert "Traceback" not in result.output


def test_verbose_logs_to_stderr_with_the_key_redacted(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    path = batch_file(tmp_path)
    orq.faults.add("list", Fault.rate_limited(retry_after_ms=10))
    result = invoke(orq, env, "submit", str(path), "-v", "--wait", "--interval", "0.01")
    assert result.exit_code == 0, result.output
    assert "DEBUG" in result.stderr and "Authorization" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


# --- status, list, cancel, wait ---------------------------------------------------------------


def _create(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path, name: str) -> str:
    path = batch_file(tmp_path, name=name)
    return str(
        submitted_json(invoke(orq, env, "submit", str(path), "--format", "json"))["batch_id"]
    )


def test_status_text_and_json(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path) -> None:
    batch_id = _create(orq, env, tmp_path, "a.jsonl")
    text = invoke(orq, env, "status", batch_id)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0] == f"{batch_id}: in_progress (0/3 requests)"
    assert f"  endpoint: {CHAT}" in text.stdout
    as_json = invoke(orq, env, "status", batch_id, "--format", "json")
    document = orjson.loads(as_json.stdout)
    assert document["id"] == batch_id and document["status"] == "completed"


def test_status_of_unknown_batch_exits_3(orq: FakeOrq, env: dict[str, str | None]) -> None:
    result = invoke(orq, env, "status", "batch_nope")
    assert result.exit_code == 3
    assert result.stderr.startswith("batchkit: error: ") and "404" in result.stderr


def test_list_text_json_limit_after(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    ids = [_create(orq, env, tmp_path, f"{n}.jsonl") for n in range(3)]
    text = invoke(orq, env, "list")
    assert text.exit_code == 0, text.output
    assert [line.split()[0] for line in text.stdout.splitlines()] == ids[::-1]
    page = orjson.loads(invoke(orq, env, "list", "--limit", "1", "--format", "json").stdout)
    assert [item["id"] for item in page["data"]] == [ids[2]] and page["last_id"] == ids[2]
    rest = orjson.loads(invoke(orq, env, "list", "--after", ids[2], "--format", "json").stdout)
    assert [item["id"] for item in rest["data"]] == [ids[1], ids[0]]
    assert orq.requests_to("list")[-1].query == {"limit": ["20"], "after": [ids[2]]}


def test_list_empty(orq: FakeOrq, env: dict[str, str | None]) -> None:
    result = invoke(orq, env, "list")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no batches" in result.stderr


def test_cancel_text_and_json(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path) -> None:
    batch_id = _create(orq, env, tmp_path, "a.jsonl")
    text = invoke(orq, env, "cancel", batch_id)
    assert text.exit_code == 0, text.output
    assert text.stdout == f"{batch_id}: cancelling (0/3 requests)\n"
    again = orjson.loads(invoke(orq, env, "cancel", batch_id, "--format", "json").stdout)
    assert again["id"] == batch_id


def test_wait_until_completed(orq: FakeOrq, env: dict[str, str | None], tmp_path: Path) -> None:
    batch_id = _create(orq, env, tmp_path, "a.jsonl")
    result = invoke(orq, env, "wait", batch_id, "--interval", "0.01", "--timeout", "1m")
    assert result.exit_code == 0, result.output
    output_id = orq.state.batches[batch_id]["output_file_id"]
    assert result.stdout == f"{batch_id} completed: 3 completed, 0 failed; output {output_id}\n"
    # Off a terminal: one stderr line per change of status, no bar.
    assert f"{batch_id}: in_progress (0/3 requests)" in result.stderr
    as_json = invoke(orq, env, "wait", batch_id, "--format", "json", "--interval", "0.01")
    assert orjson.loads(as_json.stdout)["status"] == "completed"
    assert as_json.stderr == ""


def test_wait_on_a_cancelled_batch_exits_4(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    batch_id = _create(orq, env, tmp_path, "a.jsonl")
    invoke(orq, env, "cancel", batch_id)
    result = invoke(orq, env, "wait", batch_id, "--interval", "0.01")
    assert result.exit_code == 4
    assert result.stdout.startswith(f"{batch_id} cancelled:")
    assert result.stderr.splitlines()[-1] == f"batchkit: error: batch {batch_id} ended cancelled"


def test_wait_on_a_failed_validation_prints_the_lines_like_validate(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orq.state.progression = ["validating", "failed"]
    path = batch_file(tmp_path)
    submitted = submitted_json(invoke(orq, env, "submit", str(path), "--format", "json"))
    batch = orq.state.batches[submitted["batch_id"]]
    batch["errors"] = {
        "object": "list",
        "data": [
            {"code": "invalid_url", "message": "bad url", "param": "url", "line": 2},
            {"code": "empty_file", "message": "no requests", "param": None, "line": None},
        ],
    }
    result = invoke(orq, env, "wait", batch["id"], "--interval", "0.01")
    assert result.exit_code == 4
    file_id = batch["input_file_id"]
    assert result.stdout.splitlines()[:2] == [
        f"{file_id}:2: invalid_url: bad url",
        f"{file_id}: empty_file: no requests",
    ]
    assert "ended failed with 2 error(s)" in result.stderr

    # With submit --wait, the lines name the local file, as `batchkit validate` would.
    end = orq.state._end

    def end_with_line_errors(batch: dict[str, Any], status: str) -> None:
        end(batch, status)
        if status == "failed":  # the server refused the file: its errors name its lines
            batch["errors"] = {"object": "list", "data": line_errors}

    line_errors = [
        {"code": "invalid_url", "message": "bad url", "param": "url", "line": 3},
        {"code": "duplicate_custom_id", "message": "repeated", "param": "custom_id", "line": 1},
        {"code": "token_limit_exceeded", "message": "queue full", "param": None, "line": None},
    ]
    monkeypatch.setattr(orq.state, "_end", end_with_line_errors)
    again = invoke(orq, env, "submit", str(path), "--force", "--wait", "--interval", "0.01")
    newest = list(orq.state.batches.values())[-1]
    assert again.exit_code == 4, again.output
    assert newest["status"] == "failed"
    assert newest["input_file_id"] != file_id  # a new upload: its id is not what is shown
    errors_shown = [line for line in again.stdout.splitlines() if line.startswith(str(path))]
    assert errors_shown == [
        f"{path}:3: invalid_url: bad url",
        f"{path}:1: duplicate_custom_id: repeated",
        f"{path}: token_limit_exceeded: queue full",
    ], again.output
    assert f"{newest['input_file_id']}:" not in again.stdout
    assert "ended failed with 3 error(s)" in again.stderr


def test_submit_wait_with_json_and_github_output(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path
) -> None:
    outputs = tmp_path / "out"
    result = invoke(
        orq,
        env,
        "submit",
        str(batch_file(tmp_path)),
        "--wait",
        "--interval",
        "0.01",
        "--format",
        "json",
        GITHUB_OUTPUT=str(outputs),
    )
    document = submitted_json(result)
    assert document["waited"] is True
    assert document["batch"]["status"] == "completed"
    assert f"batch_id={document['batch_id']}" in outputs.read_text()


def test_ctrl_c_during_the_upload_says_nothing_was_created(
    orq: FakeOrq, env: dict[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchkit.client import Client

    def interrupted_upload(self: Client, path: Any, **kwargs: Any) -> Any:
        kwargs["progress"](1000, 5000)
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "upload_file", interrupted_upload)
    result = invoke(orq, env, "submit", str(batch_file(tmp_path)))
    assert result.exit_code == 130
    assert "nothing was created" in result.stderr
    assert orq.state.batches == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("0.5", 0.5),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        (".25", 0.25),
        ("1.5h", 5400.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h-5m", "one", "1..5"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


# --- real processes ---------------------------------------------------------------------------


def test_subprocess_exit_codes_and_no_secret(orq: FakeOrq, tmp_path: Path) -> None:
    env = clean_env(ORQ_API_KEY=SECRET)
    base = ["--base-url", orq.url]
    good = run_batchkit("submit", str(batch_file(tmp_path)), *base, "-v", env=env)
    assert good.returncode == 0, explain(good)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"custom_id": 1}\n')
    invalid = run_batchkit("submit", str(bad), *base, env=env)
    usage = run_batchkit("submit", str(bad), "--metadata", "x", *base, env=env)
    denied = run_batchkit("list", *base, "-v", env=clean_env(ORQ_API_KEY=SECRET + "x"))
    assert (invalid.returncode, usage.returncode, denied.returncode) == (1, 2, 3)
    for result in (good, invalid, usage, denied):
        assert "Traceback" not in result.stderr
        assert_no_secret(result.stdout, result.stderr)


class _Blackhole:
    """Accepts one connection, reads 1 MB of it, then stops reading: an upload that hangs.

    Reading a whole megabyte first makes sure the client is past the headers and into the
    body (so its progress callback has run) when the test presses Ctrl-C.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.receiving = threading.Event()
        self.conn: socket.socket | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.conn = conn
        received = 0
        while received < 1024 * 1024:
            chunk = conn.recv(65536)
            if not chunk:
                return
            received += len(chunk)
        self.receiving.set()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.sock.close()


def test_ctrl_c_during_a_real_upload_exits_130(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    filler = "x" * 10_000
    path.write_bytes(
        jsonl(
            *(
                request(
                    f"r{n}", body={"model": "m", "messages": [{"role": "user", "content": filler}]}
                )
                for n in range(2_000)
            )
        )
    )  # about 20 MB
    server = _Blackhole()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchkit",
                "submit",
                str(path),
                "--force",
                "--base-url",
                server.url,
                "--read-timeout",
                "120",
            ],
            env=clean_env(ORQ_API_KEY=SECRET),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert server.receiving.wait(60), "the upload never started"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        server.close()
    assert process.returncode == 130, f"stdout: {stdout}\nstderr: {stderr}"
    assert stderr.splitlines()[-1] == (
        "batchkit: error: interrupted during the upload: nothing was created"
    )
    assert "Traceback" not in stderr


# --- issue 7: what a new user broke (each test through `python -m batchkit`) ----------------


def _run(orq: FakeOrq, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m batchkit ARGS --base-url FAKE`` with the fake's key and short timeouts."""
    settings = {"ORQ_API_KEY": SECRET, **env}
    command = [*args, "--base-url", orq.url, "--connect-timeout", "2", "--read-timeout", "5"]
    result = run_batchkit(*command, env=clean_env(**settings))
    assert "Traceback" not in result.stderr, explain(result)
    return result


def _finished_batch(orq: FakeOrq, tmp_path: Path) -> str:
    """A batch that has completed on the fake server."""
    orq.state.progression = ["validating", "completed"]
    batch_id = _create(orq, {"ORQ_API_KEY": SECRET, "NO_COLOR": "1"}, tmp_path, "done.jsonl")
    orq.state.advance(batch_id)
    assert orq.state.batches[batch_id]["status"] == "completed"
    return batch_id


@pytest.mark.parametrize("answer", [None, 400, 409], ids=["orq", "openai-400", "llama-stack-409"])
def test_cancel_of_a_finished_batch_shows_it_and_exits_0(
    orq: FakeOrq, tmp_path: Path, answer: int | None
) -> None:
    batch_id = _finished_batch(orq, tmp_path)
    orq.state.cancel_finished = answer
    text = _run(orq, "cancel", batch_id)
    assert text.returncode == 0, explain(text)
    assert text.stdout == f"{batch_id}: completed (3/3 requests)\n"
    as_json = _run(orq, "cancel", batch_id, "--format", "json")
    assert as_json.returncode == 0, explain(as_json)
    assert orjson.loads(as_json.stdout)["status"] == "completed"
    assert orq.state.batches[batch_id]["status"] == "completed"


@pytest.mark.parametrize("status", [400, 409])
def test_a_refused_cancel_of_a_running_batch_is_still_an_error(
    orq: FakeOrq, tmp_path: Path, status: int
) -> None:
    orq.state.steps_per_status = 10**6  # stays validating
    batch_id = _create(orq, {"ORQ_API_KEY": SECRET}, tmp_path, "a.jsonl")
    refusal = {"error": {"code": "invalid_request", "message": "cannot cancel now"}}
    orq.faults.add("cancel", Fault.http(status, refusal))
    result = _run(orq, "cancel", batch_id)
    assert result.returncode == 3, explain(result)
    assert f"HTTP {status}" in result.stderr and "cannot cancel now" in result.stderr
    assert result.stdout == ""


def test_wait_timeout_exits_5_and_json_still_prints_the_batch(orq: FakeOrq, tmp_path: Path) -> None:
    orq.state.steps_per_status = 10**6  # never moves
    batch_id = _create(orq, {"ORQ_API_KEY": SECRET}, tmp_path, "a.jsonl")
    text = _run(orq, "wait", batch_id, "--interval", "0.05", "--timeout", "0.3")
    assert text.returncode == 5, explain(text)
    assert "still validating" in text.stderr.splitlines()[-1]
    as_json = _run(
        orq, "wait", batch_id, "--interval", "0.05", "--timeout", "0.3", "-q", "--format", "json"
    )
    assert as_json.returncode == 5, explain(as_json)
    assert orjson.loads(as_json.stdout)["id"] == batch_id
    assert orjson.loads(as_json.stdout)["status"] == "validating"


def test_submit_wait_timeout_prints_the_document_and_exits_5(orq: FakeOrq, tmp_path: Path) -> None:
    orq.state.steps_per_status = 10**6
    outputs = tmp_path / "github_output"
    result = _run(
        orq,
        "submit",
        str(batch_file(tmp_path)),
        "--wait",
        "--interval",
        "0.05",
        "--timeout",
        "0.3",
        "--format",
        "json",
        GITHUB_OUTPUT=str(outputs),
    )
    assert result.returncode == 5, explain(result)
    document = orjson.loads(result.stdout)
    (batch,) = orq.state.batches.values()
    assert document["batch_id"] == batch["id"] and document["waited"] is True
    assert document["batch"]["status"] == "validating"
    assert f"batch_id={batch['id']}" in outputs.read_text()
    assert "still validating" in result.stderr


def test_help_names_the_wait_timeout_exit_code() -> None:
    for command in ("submit", "wait"):
        shown = run_batchkit(command, "--help", env=clean_env())
        assert "5 if --timeout" in " ".join(shown.stdout.split()), shown.stdout


@pytest.mark.parametrize("command", [["status", "batch_1"], ["validate", "samples/chat.jsonl"]])
def test_an_unknown_profile_from_the_environment_is_named(command: list[str]) -> None:
    result = run_batchkit(*command, env=clean_env(BATCHKIT_PROFILE="nope", ORQ_API_KEY=SECRET))
    assert result.returncode == 2, explain(result)
    assert "unknown profile 'nope' (from BATCHKIT_PROFILE)" in result.stderr
    assert "None" not in result.stderr


def test_sixteen_metadata_pairs_are_accepted_without_the_hash(orq: FakeOrq, tmp_path: Path) -> None:
    pairs = {f"k{i:02d}": f"v{i}" for i in range(16)}
    args = [arg for key, value in pairs.items() for arg in ("--metadata", f"{key}={value}")]
    path = batch_file(tmp_path)
    result = _run(orq, "submit", str(path), *args, "--format", "json")
    assert result.returncode == 0, explain(result)
    (batch,) = orq.state.batches.values()
    assert batch["metadata"] == pairs  # all 16 of the user's, no batchkit_sha256
    assert orjson.loads(result.stdout)["rerun_detection"] is False
    assert "batchkit: warning: " in result.stderr and HASH_KEY in result.stderr
    assert "re-run" in result.stderr

    fifteen = args[:-2]
    again = _run(orq, "submit", str(batch_file(tmp_path, name="b.jsonl")), *fifteen)
    assert again.returncode == 0, explain(again)
    assert "warning" not in again.stderr
    assert list(orq.state.batches.values())[-1]["metadata"][HASH_KEY]


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([f"k{i}=v" for i in range(17)], "17 pairs; at most 16"),
        (["k" * 65 + "=v"], "at most 64"),
        (["k=" + "v" * 513], "at most 512"),
        (["run=1", "run=2"], "'run' is given twice"),
        ([f"{HASH_KEY}=x"], "reserved"),
        (["no-equals-sign"], "is not KEY=VALUE"),
    ],
)
def test_every_metadata_mistake_is_a_usage_error(
    orq: FakeOrq, tmp_path: Path, pairs: list[str], expected: str
) -> None:
    args = [arg for pair in pairs for arg in ("--metadata", pair)]
    result = _run(orq, "submit", str(batch_file(tmp_path)), *args)
    assert result.returncode == 2, explain(result)
    assert expected in result.stderr and "--metadata" in result.stderr
    assert orq.requests == []


def test_metadata_help_says_sixteen() -> None:
    shown = run_batchkit("submit", "--help", env=clean_env())
    assert "at most 16 pairs" in " ".join(shown.stdout.split())


def test_an_empty_base_url_flag_is_refused(tmp_path: Path) -> None:
    env = clean_env(ORQ_API_KEY=SECRET)
    result = run_batchkit(
        "submit", str(batch_file(tmp_path)), "--dry-run", "--base-url", "", env=env
    )
    assert result.returncode == 2, explain(result)
    assert "--base-url" in result.stderr and "empty" in result.stderr
    # An empty variable means "not set", as usual for environment variables.
    unset = run_batchkit(
        "submit", str(batch_file(tmp_path)), "--dry-run", env={**env, "BATCHKIT_BASE_URL": ""}
    )
    assert unset.returncode == 0, explain(unset)
    assert "to https://api.orq.ai/v2/files" in unset.stdout


def _with_credentials(url: str) -> str:
    return url.replace("http://", "http://robot:pa55w0rd-in-url@")


def test_credentials_in_the_base_url_are_never_shown(orq: FakeOrq, tmp_path: Path) -> None:
    env = clean_env(ORQ_API_KEY=SECRET)
    secret_url = _with_credentials(orq.url)
    closed = _with_credentials(f"http://127.0.0.1:{_closed_port()}")
    path = str(batch_file(tmp_path))
    runs = {
        "api error, -v": run_batchkit("status", "batch_1", "--base-url", secret_url, "-v", env=env),
        "network error": run_batchkit(
            "status", "batch_1", "--base-url", closed, "--max-attempts", "1", env=env
        ),
        "dry run": run_batchkit("submit", path, "--dry-run", "--base-url", secret_url, env=env),
        "not http": run_batchkit(
            "status", "b", "--base-url", "ftp://robot:pa55w0rd-in-url@host", env=env
        ),
    }
    for name, result in runs.items():
        shown = result.stdout + result.stderr
        assert "pa55w0rd-in-url" not in shown, f"{name}: {explain(result)}"
        assert "robot" not in shown, f"{name}: {explain(result)}"
        # requests sends URL credentials as Basic auth; the fake echoes them back in base64.
        assert "cm9ib3Q6cGE1NXcwcmQtaW4tdXJs" not in shown, f"{name}: {explain(result)}"
        assert "Traceback" not in shown
    assert runs["api error, -v"].returncode == 3
    assert runs["network error"].returncode == 3
    assert f"127.0.0.1:{orq.port}" in runs["dry run"].stdout


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_short_key_does_not_mangle_messages(orq: FakeOrq) -> None:
    orq.state.api_key = "the-right-key"
    v2 = ["--profile", "orq-v2"]  # its path, /v2/proxy/batch, holds the short keys below
    wrong = run_batchkit(
        "status", "batch_x", *v2, "--base-url", orq.url, env=clean_env(ORQ_API_KEY="x")
    )
    assert wrong.returncode == 3, explain(wrong)
    assert "GET /v2/proxy/batch/batch_x: HTTP 401" in wrong.stderr  # not batch_[redacted]
    assert "Invalid API key provided: [redacted]" in wrong.stderr  # the echoed key itself

    # The -v log filter too: a key that happens to be part of a path leaves the path alone.
    orq.state.api_key = "prox"
    logged = run_batchkit(
        "status", "batch_x", *v2, "--base-url", orq.url, "-v", env=clean_env(ORQ_API_KEY="prox")
    )
    assert logged.returncode == 3, explain(logged)
    assert "/v2/proxy/batch/batch_x attempt 1" in logged.stderr
    assert "Bearer prox" not in logged.stderr


@pytest.mark.parametrize("kind", ["missing directory", "a directory"])
@pytest.mark.parametrize("output_format", ["text", "json"])
def test_an_unwritable_github_output_is_a_warning_after_the_result(
    orq: FakeOrq, tmp_path: Path, kind: str, output_format: str
) -> None:
    target = tmp_path / "no" / "such" / "dir" if kind == "missing directory" else tmp_path
    result = _run(
        orq,
        "submit",
        str(batch_file(tmp_path)),
        "--format",
        output_format,
        GITHUB_OUTPUT=str(target),
    )
    assert result.returncode == 0, explain(result)
    (batch,) = orq.state.batches.values()
    assert batch["id"] in result.stdout
    if output_format == "json":
        assert orjson.loads(result.stdout)["batch_id"] == batch["id"]
    warning = result.stderr.splitlines()[-1]
    assert warning.startswith(f"batchkit: warning: cannot write GITHUB_OUTPUT ({target}): ")
