"""The key and a presigned URL's signature appear nowhere a user or a CI log can see them.

Two locks keep them out.  The client redacts what it builds from a server's answer (the key
echoed in a 401's body); the CLI's ``-v`` log passes every record through
:class:`~batchkit.redact.RedactingFilter`, against the mistakes the first lock misses: a
message built from an echo, an exception logged with its traceback, a presigned URL.  The
subprocess tests below hold the whole CLI to it; the tests of the filter fail when it is made
a no-op (and the presigned URL's retry line is one only the filter guards).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from batchkit.cli.api import ApiSettings, debug_logging, open_client
from batchkit.client import Client
from batchkit.errors import AuthError
from batchkit.limits import get_profile
from tests.helpers import CHAT, jsonl, request
from tests.servers.cli import batch_file, clean_env, explain, run_batchkit
from tests.servers.fake_orq import FakeOrq, Fault

#: The key the server expects, and the one the user (wrongly) gave, which the fake echoes.
SERVER_KEY = "sk-orq-REDACTION-server-5e6f7a8b"
USER_KEY = "sk-orq-REDACTION-typo-0c1d2e3f"


@pytest.fixture
def orq() -> Iterator[FakeOrq]:
    with FakeOrq() as server:
        server.state.api_key = SERVER_KEY
        yield server


def run(orq: FakeOrq, *args: str, key: str = USER_KEY, **env: str) -> tuple[int, str, str]:
    """``python -m batchkit ARGS --base-url FAKE``: its exit code, stdout and stderr."""
    result = run_batchkit(
        *args, "--base-url", orq.url, "--max-attempts", "3", env=clean_env(ORQ_API_KEY=key, **env)
    )
    assert "Traceback" not in result.stderr, explain(result)
    return result.returncode, result.stdout, result.stderr


def assert_echo_redacted(*texts: str) -> None:
    """The fake echoed the key (so the test tested something), and it was redacted."""
    shown = "\n".join(texts)
    assert USER_KEY not in shown
    assert "Invalid API key provided: [redacted]" in shown, shown


# -- the key a server echoes on 401, through the whole CLI ----------------------------------


def test_an_echoed_key_is_not_in_the_verbose_log(orq: FakeOrq) -> None:
    code, stdout, stderr = run(orq, "list", "-v")
    assert code == 3
    assert "batchkit: DEBUG" in stderr  # -v was on
    assert_echo_redacted(stdout, stderr)


@pytest.mark.parametrize("command", [["status", "batch_x"], ["list"], ["download", "batch_x"]])
def test_an_echoed_key_is_not_in_json_output(orq: FakeOrq, command: list[str]) -> None:
    code, stdout, stderr = run(orq, *command, "--format", "json", "-v")
    assert code == 3
    assert_echo_redacted(stdout, stderr)


def test_an_echoed_key_is_not_in_github_output(orq: FakeOrq, tmp_path: Path) -> None:
    outputs = tmp_path / "github_output"
    path = batch_file(tmp_path)
    code, stdout, stderr = run(
        orq, "submit", str(path), "--format", "json", "-v", GITHUB_OUTPUT=str(outputs)
    )
    assert code == 3
    assert_echo_redacted(stdout, stderr)
    assert USER_KEY not in (outputs.read_text() if outputs.exists() else "")
    # And once a batch exists, its GITHUB_OUTPUT lines (written whatever happens next).
    code, stdout, stderr = run(orq, "submit", str(path), key=SERVER_KEY, GITHUB_OUTPUT=str(outputs))
    assert code == 0, stderr
    assert "batch_id=" in outputs.read_text()
    assert SERVER_KEY not in outputs.read_text() + stdout + stderr


def test_an_echoed_key_is_not_in_the_exception(orq: FakeOrq) -> None:
    client_with_typo = Client(get_profile("orq"), base_url=orq.url, api_key=USER_KEY)
    with client_with_typo, pytest.raises(AuthError) as caught:
        client_with_typo.list_batches()
    error = caught.value
    assert_echo_redacted(str(error), repr(error), repr(error.args), repr(client_with_typo))


# -- the CLI's log filter: the second lock ------------------------------------------------------


@pytest.fixture
def verbose_cli(orq: FakeOrq, monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The ``-v`` log exactly as a command sets it up, with a client's key registered."""
    monkeypatch.setenv("ORQ_API_KEY", USER_KEY)
    settings = ApiSettings(
        profile=None,
        base_url=orq.url,
        api_key_file=None,
        connect_timeout=None,
        read_timeout=None,
        max_attempts=None,
        allow_insecure_http=False,
        verbose=True,
    )
    with debug_logging(True), open_client(settings):
        yield logging.getLogger("batchkit.slip")


def test_the_filter_redacts_a_key_a_library_would_log_by_mistake(
    verbose_cli: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    verbose_cli.debug(f"the server said: Invalid API key provided: {USER_KEY}")
    verbose_cli.debug("the server said: %s", {"key": USER_KEY})
    verbose_cli.debug("sent headers=%s", {"Authorization": "Bearer sk-another-token-1234"})
    verbose_cli.debug("sent headers=%s", {"api-key": "azure0123456789abcdef"})  # not registered
    logged = capsys.readouterr().err
    assert logged.count("***") == 4, logged
    assert USER_KEY not in logged and "sk-another-token-1234" not in logged
    assert "azure0123456789abcdef" not in logged


def test_the_filter_redacts_the_key_in_a_logged_exception_and_its_traceback(
    verbose_cli: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise RuntimeError(f"refused: {USER_KEY}")
    except RuntimeError as error:
        verbose_cli.debug("it failed: %s", error, exc_info=True)
    logged = capsys.readouterr().err
    assert "Traceback" in logged and "RuntimeError: refused: ***" in logged, logged
    assert USER_KEY not in logged


PRESIGNED = (
    "https://bucket.s3.amazonaws.com/file?X-Amz-Credential=AKIA%2F20250101&"
    "X-Amz-Signature=0123456789abcdef&X-Amz-Expires=3600",
    "https://account.blob.core.windows.net/c/file?sv=2024-01-01&sig=AbC%2Bdef%3D&se=2025",
)


@pytest.mark.parametrize("url", PRESIGNED, ids=["s3", "azure"])
def test_the_filter_redacts_a_presigned_urls_signature(
    verbose_cli: logging.Logger, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    verbose_cli.debug("GET %s -> 503: busy", url)
    logged = capsys.readouterr().err
    assert "0123456789abcdef" not in logged and "AbC%2Bdef%3D" not in logged, logged
    assert re.search(r"(X-Amz-Signature|sig)=\*\*\*", logged), logged
    assert "X-Amz-Expires=3600" in logged or "se=2025" in logged  # the rest stays readable


def test_a_signature_echoed_by_the_storage_is_not_in_the_verbose_log(
    orq: FakeOrq, tmp_path: Path
) -> None:
    """A storage that echoes the URL it was asked for, in a 503 that is retried: the retry's
    log line holds the server's text, which only the log filter stands between."""
    stored = orq.state.store_file("requests.jsonl", "batch", jsonl(request("a")))
    status, batch = orq.state.create_batch(
        {"input_file_id": stored.id, "endpoint": CHAT, "completion_window": "24h"}
    )
    assert status == 200
    orq.state.end_batch(batch["id"])
    output_id = orq.state.batches[batch["id"]]["output_file_id"]
    signature = hashlib.sha256((output_id + orq.signing_key).encode()).hexdigest()[:16]
    echo = f"busy: GET /presigned/{output_id}?X-Amz-Signature={signature}&sig={signature}"
    orq.faults.add("download", Fault.http(503, {"message": echo, "code": "busy"}))
    code, stdout, stderr = run(
        orq,
        "download",
        batch["id"],
        "-d",
        str(tmp_path),
        "-v",
        "--format",
        "json",
        key=SERVER_KEY,
        BATCHKIT_PROFILE="orq-v2",  # presigned URLs are the v2 API's downloads
    )
    assert code == 0, stderr
    assert "busy: GET /presigned/" in stderr and "retrying" in stderr  # the echo was logged
    assert signature not in stdout + stderr
    assert orjson.loads(stdout)  # and the download went on


@pytest.mark.parametrize("status", [503, 403])
def test_a_signature_echoed_in_the_final_error_is_redacted(
    orq: FakeOrq, tmp_path: Path, status: int
) -> None:
    """When the storage keeps refusing (503 until the attempts run out, or a 403), its echo of
    the presigned URL ends up in the one error line: without the signature, and a 403 of the
    link (sent without the key) does not send the user to check their key."""
    stored = orq.state.store_file("requests.jsonl", "batch", jsonl(request("a")))
    _status, batch = orq.state.create_batch(
        {"input_file_id": stored.id, "endpoint": CHAT, "completion_window": "24h"}
    )
    orq.state.end_batch(batch["id"])
    output_id = orq.state.batches[batch["id"]]["output_file_id"]
    signature = hashlib.sha256((output_id + orq.signing_key).encode()).hexdigest()[:16]
    echo = f"refused: GET /presigned/{output_id}?X-Amz-Signature={signature}&sig={signature}"
    orq.faults.add("download", Fault.http(status, {"message": echo, "code": "busy"}), times=3)
    code, stdout, stderr = run(orq, "download", batch["id"], "-d", str(tmp_path), key=SERVER_KEY,
                               BATCHKIT_PROFILE="orq-v2")  # fmt: skip
    assert code == 3, stderr
    assert f"refused: GET /presigned/{output_id}?X-Amz-Signature=" in stderr  # the echo is shown
    assert signature not in stdout + stderr
    if status == 403:
        assert "ORQ_API_KEY" not in stderr and "the download link was refused" in stderr
