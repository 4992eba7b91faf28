"""batchkit.client against the fake orq API: real HTTP on loopback, real files, real faults.

Retries sleep through an injected fake sleep (so a 503 storm takes milliseconds); one test
honours a real one-second ``Retry-After`` and measures the gap.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import socket
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import requests

import batchkit
from batchkit.client import (
    Batch,
    Client,
    FileObject,
    display_url,
    parse_retry_after,
    redact_secret,
)
from batchkit.errors import (
    ApiError,
    AuthError,
    BatchkitError,
    InvalidInputError,
    NetworkError,
    UsageError,
)
from tests.helpers import CHAT
from tests.servers.fake_orq import FakeOrq, Fault

SECRET = "sk-orq-S3CRET-d1stinct1ve-7f3a9c"


class FakeSleep:
    """Records the delays asked for instead of sleeping them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def fake(fake_orq: FakeOrq) -> FakeOrq:
    fake_orq.state.api_key = SECRET
    return fake_orq


@pytest.fixture
def sleeper() -> FakeSleep:
    return FakeSleep()


#: orq's two APIs, the router (the default) and the reference page's: the fake serves both, and
#: every test that takes the ``client`` fixture runs against each.
ORQ_PROFILES = ("orq", "orq-v2")


@pytest.fixture(params=ORQ_PROFILES)
def client(fake: FakeOrq, sleeper: FakeSleep, request: pytest.FixtureRequest) -> Client:
    return make_client(fake, sleeper, profile=request.param)


def make_client(fake: FakeOrq, sleeper: Any = None, **overrides: Any) -> Client:
    """A client of the fake.  Its profile is ``orq-v2`` unless ``profile`` is given: the tests
    that use this helper directly are about the file-id route (``/v2/files/{id}/content`` and
    its presigned download), which the router profile does not take for results; the
    ``client`` fixture runs the contract tests on both orq profiles."""
    settings: dict[str, Any] = {
        "base_url": fake.url,
        "api_key": SECRET,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "sleep": sleeper or FakeSleep(),
    }
    settings.update(overrides)
    profile = settings.pop("profile", "orq-v2")
    return Client(profile, **settings)


def write_batch(path: Path, lines: int = 3) -> Path:
    with path.open("w") as handle:
        for number in range(lines):
            request = {
                "custom_id": f"req-{number}",
                "method": "POST",
                "url": CHAT,
                "body": {
                    "model": "openai/gpt-4o-mini",
                    "messages": [{"role": "user", "content": "hi"}],
                },
            }
            handle.write(json.dumps(request) + "\n")
    return path


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    return write_batch(tmp_path / "requests.jsonl")


def uploaded(client: Client, batch_file: Path) -> FileObject:
    return client.upload_file(batch_file)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- upload -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_upload_parses_both_orq_shapes(
    fake: FakeOrq, client: Client, batch_file: Path, shape: str
) -> None:
    fake.state.upload_shape = shape  # type: ignore[assignment]
    file = client.upload_file(batch_file)
    stored = fake.state.files[file.id]
    assert file.filename == "requests.jsonl"
    assert file.bytes == batch_file.stat().st_size  # a string in the nested shape
    assert file.purpose == "batch"
    assert stored.content == batch_file.read_bytes()
    assert stored.purpose == "batch"
    assert fake.uploads == [(file.id, "application/jsonl")]
    (request,) = fake.requests_to("upload")
    assert "Transfer-Encoding" not in request.headers  # streamed, with a Content-Length
    assert int(request.headers["Content-Length"]) > batch_file.stat().st_size


def test_upload_reports_progress_up_to_the_total(client: Client, batch_file: Path) -> None:
    seen: list[tuple[int, int]] = []
    client.upload_file(batch_file, progress=lambda sent, total: seen.append((sent, total)))
    assert seen
    sent, total = seen[-1]
    assert sent == total > batch_file.stat().st_size  # multipart framing included
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)


def test_upload_gives_the_server_a_jsonl_name(
    fake: FakeOrq, client: Client, tmp_path: Path
) -> None:
    source = write_batch(tmp_path / "requests.txt")
    file = client.upload_file(source)
    assert fake.state.files[file.id].filename == "requests.jsonl"
    with pytest.raises(InvalidInputError, match=r"\.jsonl"):
        client.upload_file(source, filename="requests.json")
    assert len(fake.requests_to("upload")) == 1


def test_upload_retries_rebuild_the_whole_stream(
    fake: FakeOrq, client: Client, sleeper: FakeSleep, tmp_path: Path
) -> None:
    source = write_batch(tmp_path / "big.jsonl", lines=20_000)  # ~3 MB: several 1 MiB chunks
    fake.faults.add("upload", Fault.http(503), Fault.drop(), Fault.http(502))
    seen: list[int] = []
    file = client.upload_file(source, progress=lambda sent, total: seen.append(sent))
    assert len(fake.requests_to("upload")) == 4
    assert fake.state.files[file.id].bytes == source.stat().st_size
    assert fake.state.files[file.id].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert len(sleeper.calls) == 3
    restarts = sum(1 for before, after in itertools.pairwise(seen) if after < before)
    assert restarts == 3  # each attempt streamed the file again from its first byte
    # ...with the same multipart boundary, so a retry is the same bytes (how llmock knows it).
    assert len({r.headers["Content-Type"] for r in fake.requests_to("upload")}) == 1


def test_fake_refuses_other_names_and_files_purposeless_uploads_as_retrieval(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    """The fake behaves like orq where the client must cope: checked with a raw client."""
    auth = {"Authorization": f"Bearer {SECRET}"}
    with batch_file.open("rb") as handle:
        refused = requests.post(
            fake.url + "/v2/files",
            files={"file": ("x.json", handle, "application/json")},
            data={"purpose": "batch"},
            headers=auth,
            timeout=5,
        )
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_file_type"
    with batch_file.open("rb") as handle:
        answer = requests.post(
            fake.url + "/v2/files",
            files={"file": ("x.jsonl", handle, "application/jsonl")},
            headers=auth,
            timeout=5,
        )
    file = FileObject.from_json(answer.json())
    assert file.purpose == "retrieval"
    with pytest.raises(ApiError) as caught:
        client.create_batch(file.id, CHAT)
    assert caught.value.status == 400
    assert caught.value.param == "input_file_id"
    assert "retrieval" in str(caught.value)


def test_file_style_error_body_becomes_api_error(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    body = {"message": "File too large", "code": "file_too_large", "details": {"max": 209715200}}
    fake.faults.add("upload", Fault.http(400, body))
    with pytest.raises(ApiError) as caught:
        client.upload_file(batch_file)
    error = caught.value
    assert (error.status, error.code) == (400, "file_too_large")
    assert "File too large" in str(error) and "209715200" in str(error)
    assert len(fake.requests_to("upload")) == 1  # a 400 is not retried


# --- retries and Retry-After -----------------------------------------------------------------


def test_429_retry_after_seconds(fake: FakeOrq, client: Client, sleeper: FakeSleep) -> None:
    fake.faults.add("list", Fault.rate_limited(7))
    assert client.list_batches() == []
    assert sleeper.calls == [7.0]


def test_429_retry_after_http_date(fake: FakeOrq, client: Client, sleeper: FakeSleep) -> None:
    fake.faults.add("list", Fault.rate_limited(30, http_date=True))
    client.list_batches()
    assert len(sleeper.calls) == 1
    assert 27 <= sleeper.calls[0] <= 30


def test_429_retry_after_ms_wins(fake: FakeOrq, client: Client, sleeper: FakeSleep) -> None:
    fake.faults.add("list", Fault.rate_limited(9, retry_after_ms=1500))
    client.list_batches()
    assert sleeper.calls == [1.5]


def test_real_retry_after_is_honoured(fake: FakeOrq, batch_file: Path) -> None:
    client = make_client(fake, time.sleep)
    fake.faults.add("retrieve", Fault.rate_limited(1))
    file = client.upload_file(batch_file)
    batch = client.create_batch(file.id, CHAT)
    client.retrieve_batch(batch.id)
    first, second = fake.requests_to("retrieve")
    assert second.time - first.time >= 1.0


def test_503_storm_gives_up_with_backoff(fake: FakeOrq, sleeper: FakeSleep) -> None:
    client = make_client(fake, sleeper, max_attempts=4)
    fake.faults.add("list", Fault.http(503, {"error": {"message": "overloaded"}}), times=10)
    with pytest.raises(ApiError) as caught:
        client.list_batches()
    assert caught.value.status == 503
    assert "gave up after 4 attempts" in str(caught.value)
    assert len(fake.requests_to("list")) == 4
    assert len(sleeper.calls) == 3
    for attempt, delay in enumerate(sleeper.calls):
        nominal = 0.5 * 2**attempt
        assert 0.75 * nominal <= delay <= nominal  # exponential, with jitter


def test_5xx_then_success(fake: FakeOrq, client: Client, sleeper: FakeSleep) -> None:
    fake.faults.add("list", Fault.http(500), Fault.http(502), Fault.http(504), Fault.drop())
    assert client.list_batches() == []
    assert len(fake.requests_to("list")) == 5


def test_retry_time_cap_stops_a_long_retry_after(fake: FakeOrq, sleeper: FakeSleep) -> None:
    client = make_client(fake, sleeper, max_retry_time=10)
    fake.faults.add("list", Fault.rate_limited(60))
    with pytest.raises(ApiError, match="time limit") as caught:
        client.list_batches()
    assert caught.value.status == 429
    assert sleeper.calls == []


def test_404_is_not_retried(fake: FakeOrq, client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.retrieve_batch("batch_missing")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert "batch_missing" in str(caught.value)
    assert len(fake.requests_to("retrieve")) == 1


def test_router_error_body_becomes_api_error(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    file = client.upload_file(batch_file)
    body = {
        "error": {
            "code": "invalid_value",
            "message": "completion_window must be 24h",
            "param": "completion_window",
            "type": "invalid_request_error",
        }
    }
    fake.faults.add("create", Fault.http(400, body))
    with pytest.raises(ApiError) as caught:
        client.create_batch(file.id, CHAT, completion_window="1h")
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "invalid_value", "completion_window")
    assert "completion_window must be 24h" in str(error)
    assert len(fake.requests_to("create")) == 1 and not fake.requests_to("list")


def test_problem_details_name_the_broken_field(fake: FakeOrq, client: Client) -> None:
    body = {
        "type": "https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY",
        "title": "Invalid request",
        "status": 422,
        "detail": "Your request is not valid",
        "validation": [
            {
                "location": ["body", "completion_window"],
                "severity": "Error",
                "code": "enum",
                "message": "must be equal to one of the allowed values: 24h",
            }
        ],
    }
    fake.faults.add("list", Fault.http(422, body))
    with pytest.raises(ApiError) as caught:
        client.list_batches()
    assert "Invalid request: body.completion_window: must be equal to" in str(caught.value)


def test_unknown_error_body_keeps_its_start(fake: FakeOrq, client: Client) -> None:
    fake.faults.add("list", Fault.http(418, "teapot " * 100))
    with pytest.raises(ApiError) as caught:
        client.list_batches()
    text = str(caught.value)
    assert "HTTP 418" in text and "teapot teapot" in text
    assert len(text) < 320


def test_read_timeout_on_a_read_is_a_network_error(fake: FakeOrq, sleeper: FakeSleep) -> None:
    client = make_client(fake, sleeper, read_timeout=0.3, max_attempts=2)
    fake.faults.add("list", Fault.slow(1.0), times=2)
    with pytest.raises(NetworkError, match="read timeout"):
        client.list_batches()
    assert len(fake.requests_to("list")) == 2


def test_connection_refused_is_a_network_error(sleeper: FakeSleep) -> None:
    port = closed_port()
    client = Client("orq", base_url=f"http://127.0.0.1:{port}", api_key=SECRET, sleep=sleeper)
    with pytest.raises(NetworkError, match="gave up after 5 attempts"):
        client.retrieve_batch("batch_1")
    assert len(sleeper.calls) == 4


# --- the safe create --------------------------------------------------------------------------


def test_create_dropped_after_store_makes_exactly_one_batch(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.drop(after=True))
    batch = client.create_batch(file.id, CHAT, metadata={"run": "1"})
    assert list(fake.state.batches) == [batch.id]
    assert batch.input_file_id == file.id and batch.metadata == {"run": "1"}
    assert len(fake.requests_to("create")) == 1
    assert len(fake.requests_to("list")) == 1


def test_create_5xx_after_store_makes_exactly_one_batch(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.http(500, after=True))
    batch = client.create_batch(file.id, CHAT)
    assert list(fake.state.batches) == [batch.id]
    assert len(fake.requests_to("create")) == 1


def test_create_lost_before_store_is_sent_again_after_checking(
    fake: FakeOrq, client: Client, sleeper: FakeSleep, batch_file: Path
) -> None:
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.drop(), Fault.http(503))
    batch = client.create_batch(file.id, CHAT)
    assert list(fake.state.batches) == [batch.id]
    routes = [r.route for r in fake.requests if r.route in ("create", "list")]
    assert routes == ["create", "list", "create", "list", "create"]
    assert len(sleeper.calls) == 2


def test_create_read_timeout_then_safe_path(fake: FakeOrq, batch_file: Path) -> None:
    client = make_client(fake, read_timeout=0.3)
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.slow(1.0))  # stored, but the answer comes too late
    batch = client.create_batch(file.id, CHAT)
    assert list(fake.state.batches) == [batch.id]
    assert len(fake.requests_to("create")) == 1


def test_create_429_is_retried_without_listing(
    fake: FakeOrq, client: Client, sleeper: FakeSleep, batch_file: Path
) -> None:
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.rate_limited(2))
    client.create_batch(file.id, CHAT)
    assert len(fake.requests_to("create")) == 2
    assert not fake.requests_to("list")
    assert sleeper.calls == [2.0]
    assert len(fake.state.batches) == 1


def test_create_connect_failure_is_retried_without_listing(sleeper: FakeSleep) -> None:
    client = Client(
        "orq",
        base_url=f"http://127.0.0.1:{closed_port()}",
        api_key=SECRET,
        sleep=sleeper,
        max_attempts=3,
    )
    with pytest.raises(NetworkError) as caught:
        client.create_batch("file_1", CHAT)
    assert "gave up after 3 attempts" in str(caught.value)
    assert "may have succeeded" not in str(caught.value)


def test_create_lost_and_unverifiable_is_not_sent_again(
    fake: FakeOrq, sleeper: FakeSleep, batch_file: Path
) -> None:
    client = make_client(fake, sleeper, max_attempts=2)
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.drop(after=True))
    fake.faults.add("list", Fault.http(503), times=5)
    with pytest.raises(NetworkError) as caught:
        client.create_batch(file.id, CHAT)
    assert "may have succeeded" in str(caught.value) and file.id in str(caught.value)
    assert len(fake.requests_to("create")) == 1
    assert len(fake.state.batches) == 1


# --- auth and secrets -------------------------------------------------------------------------


def test_401_names_the_variable_and_hides_the_key(
    fake: FakeOrq, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.state.api_key = "the-right-key"  # the server echoes the wrong key it got
    monkeypatch.setenv("ORQ_API_KEY", SECRET)
    monkeypatch.setenv("BATCHKIT_BASE_URL", fake.url)
    monkeypatch.delenv("BATCHKIT_PROFILE", raising=False)
    client = Client.from_settings(sleep=FakeSleep())
    with pytest.raises(AuthError) as caught:
        client.list_batches()
    error = caught.value
    assert error.status == 401 and error.exit_code == 3
    assert "ORQ_API_KEY" in str(error)
    assert SECRET not in str(error) and SECRET not in repr(error)
    assert SECRET in fake.requests[0].headers["Authorization"]  # it was sent, then redacted
    assert len(fake.requests) == 1  # a 401 is not retried


def test_401_with_key_file_names_the_option(fake: FakeOrq, tmp_path: Path) -> None:
    fake.state.api_key = "the-right-key"
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    client = Client.from_settings(base_url=fake.url, api_key_file=key_file)
    with pytest.raises(AuthError, match="--api-key-file") as caught:
        client.retrieve_batch("batch_1")
    assert SECRET not in str(caught.value)


def test_403_is_an_auth_error(fake: FakeOrq, client: Client) -> None:
    fake.faults.add("list", Fault.http(403, {"error": {"message": "forbidden"}}))
    with pytest.raises(AuthError, match="forbidden"):
        client.list_batches()


def test_missing_key_is_a_usage_error_before_any_request(
    fake: FakeOrq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORQ_API_KEY", raising=False)
    client = Client.from_settings(base_url=fake.url)
    with pytest.raises(UsageError, match="ORQ_API_KEY"):
        client.list_batches()
    assert fake.requests == []


def test_a_key_with_control_characters_is_refused_without_showing_it() -> None:
    with pytest.raises(UsageError) as caught:
        Client("orq", api_key=SECRET + "\nX-Injected: 1")
    assert SECRET not in str(caught.value)


def test_the_key_never_shows_in_reprs_errors_or_debug_logs(
    fake: FakeOrq, sleeper: FakeSleep, batch_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake, sleeper, max_attempts=2, read_timeout=0.3)
    errors: list[BatchkitError] = []
    file = client.upload_file(batch_file)
    fake.faults.add("create", Fault.drop(after=True))
    client.create_batch(file.id, CHAT)
    fake.faults.add("list", Fault.http(503), times=2)
    fake.faults.add("retrieve", Fault.slow(1.0), times=2)
    for call in (client.list_batches, lambda: client.retrieve_batch("batch_x")):
        with pytest.raises(BatchkitError) as caught:
            call()
        errors.append(caught.value)
    fake.state.api_key = "another"
    with pytest.raises(AuthError) as auth:
        client.list_batches()
    errors.append(auth.value)
    assert len(errors) == 3
    shown = [repr(client), str(client), repr(vars(client)), caplog.text]
    shown += [text for error in errors for text in (str(error), repr(error), repr(vars(error)))]
    for text in shown:
        assert SECRET not in text
    assert "Bearer [redacted]" in caplog.text


def test_the_key_is_sent_only_where_it_belongs(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    file = client.upload_file(batch_file)
    batch = client.create_batch(file.id, CHAT)
    while not (batch := client.retrieve_batch(batch.id)).is_terminal:
        pass
    assert batch.output_file_id
    content = client.file_content(batch.output_file_id)
    assert [json.loads(line)["custom_id"] for line in content.splitlines()] == [
        "req-0",
        "req-1",
        "req-2",
    ]
    (download,) = fake.requests_to("download")
    assert "Authorization" not in download.headers
    for request in fake.requests:
        if request.route != "download":
            assert request.headers["Authorization"] == f"Bearer {SECRET}"
        assert request.headers["User-Agent"] == f"batchkit/{batchkit.__version__}"


def test_file_content_returns_raw_bytes_when_the_server_sends_them(
    fake: FakeOrq, client: Client
) -> None:
    fake.faults.add("content", Fault.http(200, b'{"id": "x"}\n'))
    assert client.file_content("file_1") == b'{"id": "x"}\n'
    assert not fake.requests_to("download")


@pytest.mark.parametrize(
    "base_url", ["http://example.invalid", "http://10.0.0.1:8080/v1", "http://127.example.com"]
)
def test_plain_http_to_a_remote_host_is_refused_before_connecting(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(UsageError, match="plain http://") as caught:
        Client("orq", base_url=base_url, api_key=SECRET)
    assert SECRET not in str(caught.value)
    Client("orq", base_url=base_url, api_key=SECRET, allow_insecure_http=True)  # opt in


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:9", "http://127.8.9.10", "http://[::1]:9", "http://localhost:9"]
)
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    Client("orq", base_url=base_url, api_key=SECRET)


@pytest.mark.parametrize("base_url", ["", "  "])
def test_an_empty_base_url_is_refused(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="empty"):
        Client("orq", base_url=base_url, api_key=SECRET)
    with pytest.raises(UsageError, match="empty"):
        Client.from_settings(base_url=base_url)
    monkeypatch.setenv("BATCHKIT_BASE_URL", base_url)  # an empty variable means "not set"
    assert Client.from_settings().base_url == "https://api.orq.ai"


def test_redact_secret_takes_long_keys_anywhere_and_short_ones_as_tokens() -> None:
    assert redact_secret("GET /v2/proxy/batch/batch_x: key x", "x") == (
        "GET /v2/proxy/batch/batch_x: key [redacted]"
    )
    assert redact_secret("Bearer x, 'x'", "x", "***") == "Bearer ***, '***'"
    assert redact_secret("/v2/proxy/batch", "prox") == "/v2/proxy/batch"
    assert redact_secret("a%3Dsk-0123456789z", "sk-0123456789") == "a%3D[redacted]z"
    assert redact_secret("text", "") == "text"


def test_credentials_in_the_base_url_are_shown_nowhere(
    fake: FakeOrq, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = fake.url.replace("http://", "http://robot:pa%24%24word@")
    assert display_url(url + "/x?sig=1") == fake.url.replace("http://", "http://[redacted]@") + "/x"
    client = make_client(fake, base_url=url)
    with pytest.raises(AuthError) as caught:  # requests sends them as Basic auth instead
        client.list_batches()
    echoed = fake.requests[0].headers["Authorization"]
    assert echoed.startswith("Basic ")
    assert "sent (as Basic auth) in place of the key" in str(caught.value)
    shown = [str(caught.value), repr(client), caplog.text]
    for text in shown:
        assert "pa$$word" not in text and "pa%24%24word" not in text
        assert echoed.removeprefix("Basic ") not in text
        assert "robot" not in text


# --- batches ----------------------------------------------------------------------------------


def test_list_and_iterate_pages(fake: FakeOrq, client: Client, batch_file: Path) -> None:
    file = client.upload_file(batch_file)
    created = [client.create_batch(file.id, CHAT).id for _ in range(5)]
    assert [b.id for b in client.list_batches(limit=2)] == created[::-1][:2]
    assert [b.id for b in client.list_batches(limit=2, after=created[3])] == created[2::-1][:2]
    fake.requests.clear()
    assert [b.id for b in client.iter_batches(page_size=2)] == created[::-1]
    assert [r.query.get("after") for r in fake.requests] == [None, [created[3]], [created[1]]]
    assert len(list(client.iter_batches(page_size=2, max_pages=2))) == 4


def test_cancel(fake: FakeOrq, client: Client, batch_file: Path) -> None:
    file = client.upload_file(batch_file)
    batch = client.create_batch(file.id, CHAT)
    assert client.cancel_batch(batch.id).status == "cancelling"
    assert client.retrieve_batch(batch.id).status == "cancelled"
    assert client.cancel_batch(batch.id).status == "cancelled"  # not an error


@pytest.mark.parametrize("refusal", [400, 409])
def test_cancel_of_a_finished_batch_returns_it_where_the_server_refuses(
    fake: FakeOrq, client: Client, batch_file: Path, refusal: int
) -> None:
    fake.state.cancel_finished = refusal
    batch = client.create_batch(client.upload_file(batch_file).id, CHAT)
    while not client.retrieve_batch(batch.id).is_terminal:
        pass
    fake.requests.clear()
    finished = client.cancel_batch(batch.id)
    assert finished.status == "completed" and finished.request_counts.completed == 3
    assert [r.route for r in fake.requests] == ["cancel", "retrieve"]


def test_a_refused_cancel_of_a_running_batch_raises_the_refusal(
    fake: FakeOrq, client: Client, batch_file: Path
) -> None:
    fake.state.steps_per_status = 1000
    batch = client.create_batch(client.upload_file(batch_file).id, CHAT)
    fake.faults.add("cancel", Fault.http(409, {"error": {"message": "busy"}}))
    with pytest.raises(ApiError, match="busy") as caught:
        client.cancel_batch(batch.id)
    assert caught.value.status == 409


@pytest.mark.parametrize(
    ("profile", "batches"), [("orq", "/v3/router/batches"), ("orq-v2", "/v2/proxy/batch")]
)
def test_each_orq_profile_uses_its_paths(
    fake: FakeOrq, batch_file: Path, profile: str, batches: str
) -> None:
    client = make_client(fake, profile=profile)
    file = client.upload_file(batch_file)
    batch = client.create_batch(file.id, CHAT)
    client.retrieve_batch(batch.id)
    client.list_batches()
    client.cancel_batch(batch.id)
    paths = [r.path for r in fake.requests]
    assert paths == [
        "/v2/files",
        batches,
        f"{batches}/{batch.id}",
        batches,
        f"{batches}/{batch.id}/cancel",
    ]


def test_orq_router_is_retired_with_a_message_that_names_its_replacement() -> None:
    with pytest.raises(UsageError) as caught:
        Client("orq-router", api_key=SECRET)
    assert "unknown profile 'orq-router'" in str(caught.value)
    assert "'orq'" in str(caught.value) and "/v3/router/batches" in str(caught.value)


def test_results_come_by_each_profile_s_route(
    fake: FakeOrq, client: Client, batch_file: Path, tmp_path: Path
) -> None:
    """The router reads both files from its results route, the reference-page API by the
    batch's file ids; the bytes are the server's either way."""
    batch = client.create_batch(client.upload_file(batch_file).id, CHAT)
    fake.state.end_batch(batch.id, "completed", {"req-1": 500})
    fake.requests.clear()

    saved = client.download_results(batch.id, tmp_path / "results")

    stored = fake.state.batches[batch.id]
    assert saved.output is not None and saved.errors is not None
    assert saved.output.read_bytes() == fake.state.files[stored["output_file_id"]].content
    assert saved.errors.read_bytes() == fake.state.files[stored["error_file_id"]].content
    routes = [r.route for r in fake.requests]
    if client.profile.results_path is not None:
        assert routes == ["retrieve", "results", "results"]
    else:
        assert routes == ["retrieve", "content", "download", "content", "download"]


def test_every_call_has_a_connect_and_read_timeout(fake: FakeOrq, batch_file: Path) -> None:
    seen: list[Any] = []

    class Recording(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            seen.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    client = make_client(fake, session=Recording(), connect_timeout=3.0, read_timeout=7.0)
    file = client.upload_file(batch_file)
    batch = client.create_batch(file.id, CHAT)
    client.list_batches()
    client.retrieve_batch(batch.id)
    client.cancel_batch(batch.id)
    client.file_content(file.id)  # the download goes through the plain session
    assert seen == [(3.0, 7.0)] * 6


# --- parsing ----------------------------------------------------------------------------------


def test_batch_parsing_is_lenient() -> None:
    batch = Batch.from_json(
        {
            "id": "batch_1",
            "status": "failed",
            "endpoint": None,
            "request_counts": None,
            "errors": {
                "data": [{"code": "invalid_url", "message": "bad", "param": "url", "line": 3}]
            },
            "metadata": {"a": "b", "n": 1, "none": None},
            "brand_new_field": [1, 2],
        }
    )
    assert batch.is_terminal
    assert batch.request_counts.total == 0
    assert batch.errors[0].line == 3 and batch.errors[0].code == "invalid_url"
    assert batch.metadata == {"a": "b", "n": "1"}
    assert batch.raw["brand_new_field"] == [1, 2]
    with pytest.raises(ApiError):
        Batch.from_json({"status": "completed"})


def test_file_object_parses_every_shape() -> None:
    nested = FileObject.from_json(
        {"file": {"file_id": "f1", "file_name": "a.jsonl", "bytes": "12"}}
    )
    flat = FileObject.from_json({"_id": "f2", "file_name": "b.jsonl", "bytes": 13})
    openai = FileObject.from_json(
        {"id": "f3", "filename": "c.jsonl", "bytes": 14, "purpose": "batch"}
    )
    assert (nested.id, nested.filename, nested.bytes) == ("f1", "a.jsonl", 12)
    assert (flat.id, flat.filename, flat.bytes) == ("f2", "b.jsonl", 13)
    assert (openai.id, openai.filename, openai.bytes, openai.purpose) == (
        "f3",
        "c.jsonl",
        14,
        "batch",
    )
    with pytest.raises(ApiError):
        FileObject.from_json({"file_name": "x.jsonl"})


def test_parse_retry_after() -> None:
    now = float(int(time.time()))
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"Retry-After": "2", "retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": formatdate(now + 20, usegmt=True)}, now=now) == 20
    assert parse_retry_after({"Retry-After": formatdate(now - 20, usegmt=True)}, now=now) == 0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
