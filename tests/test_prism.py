"""Against Prism serving the official OpenAI spec (``../shared/specs/openai-openapi.yaml``).

Prism checks every request against the spec and answers placeholders (``"id": "string"``):
these tests assert on what it accepted or refused, never on the values it sends back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from batchkit import schemas
from batchkit.client import Client
from batchkit.endpoints import ENDPOINTS
from batchkit.errors import ApiError
from tests.helpers import CHAT, SAMPLES
from tests.servers.cli import batch_file, clean_env, explain, json_out, run_batchkit
from tests.servers.llmock_prism import PrismServer

pytestmark = pytest.mark.prism

KEY = "sk-prism-test-key-0123456789"


@pytest.fixture
def client(prism_server: PrismServer) -> Client:
    # Prism sends no answer at all to some bad bodies: a read timeout keeps that finite.
    return Client("openai", base_url=prism_server.openai_base_url, api_key=KEY, read_timeout=30.0)


def test_upload_is_accepted_as_sent(client: Client, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    uploaded = client.upload_file(batch_file(tmp_path), progress=lambda s, t: seen.append((s, t)))
    assert isinstance(uploaded.id, str) and uploaded.id
    assert seen and seen[-1][0] == seen[-1][1]


def test_create_is_accepted_as_sent(client: Client) -> None:
    batch = client.create_batch(
        "file-abc123", CHAT, metadata={"batchkit_sha256": "0" * 64, "run": "prism"}
    )
    assert isinstance(batch.id, str) and batch.id
    assert isinstance(batch.status, str)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_endpoint_batchkit_knows_is_one_the_spec_allows(
    client: Client, endpoint: str
) -> None:
    assert client.create_batch("file-abc123", endpoint).id


#: Bodies batchkit accepts, for each endpoint: its sample file's, or written here.
_ACCEPTED: dict[str, list[dict[str, Any]]] = {
    "/v1/images/edits": [
        {"model": "gpt-image-1", "prompt": "Add a hat", "images": [{"file_id": "file-abc"}]},
        {
            "prompt": "Add a hat",
            "images": [{"image_url": "https://example.com/a.png"}],
            "mask": {"file_id": "file-mask"},
            "size": "1024x1024",
        },
    ],
    "/v1/videos": [{"model": "sora-2", "prompt": "A cat at a piano", "seconds": "4"}],
}
_SAMPLES = {
    CHAT: "chat.jsonl",
    "/v1/embeddings": "embeddings.jsonl",
    "/v1/completions": "completions.jsonl",
    "/v1/responses": "responses.jsonl",
    "/v1/moderations": "moderations.jsonl",
    "/v1/images/generations": "images.jsonl",
}


def _accepted_bodies(endpoint: str) -> list[dict[str, Any]]:
    if endpoint in _SAMPLES:
        lines = (SAMPLES / _SAMPLES[endpoint]).read_bytes().splitlines()
        return [orjson.loads(line)["body"] for line in lines]
    return _ACCEPTED[endpoint]


def _post(prism_server: PrismServer, endpoint: str, body: dict[str, Any]) -> requests.Response:
    """The body sent to the endpoint itself: Prism checks it against the official spec."""
    url = prism_server.openai_base_url + endpoint.removeprefix("/v1")
    headers = {"Authorization": f"Bearer {KEY}"}
    return requests.post(url, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_prism_accepts_the_bodies_batchkit_accepts(
    prism_server: PrismServer, endpoint: str
) -> None:
    bodies = _accepted_bodies(endpoint)
    assert bodies and all(schemas.is_valid(ENDPOINTS[endpoint].schema, b) for b in bodies)
    refused = {
        index: response.text[:300]
        for index, body in enumerate(bodies)
        if (response := _post(prism_server, endpoint, body)).status_code >= 400
    }
    assert refused == {}


def test_prism_refuses_what_batchkit_refuses(prism_server: PrismServer) -> None:
    """The other way round, once per kind: a body both schemas refuse is refused by Prism."""
    bad = {"model": "gpt-4.1-mini", "input": "x", "text": {"format": {"type": "json"}}}
    assert not schemas.is_valid("responses.json", bad)
    assert _post(prism_server, "/v1/responses", bad).status_code == 422


def test_the_deliberate_content_parts_disagreement_is_real(prism_server: PrismServer) -> None:
    """batchkit accepts a /v1/responses message whose content is a list of parts (the shape
    OpenAI's own examples send); the spec's ambiguous oneOf, and so Prism, refuses it.  Listed
    in test_schema_differential.DELIBERATE: if Prism accepts it one day, drop the entry."""
    body = {
        "model": "gpt-4.1-mini",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
    }
    assert schemas.is_valid("responses.json", body)
    assert _post(prism_server, "/v1/responses", body).status_code == 422


def test_list_retrieve_cancel_are_accepted(client: Client) -> None:
    assert isinstance(client.list_batches(limit=5, after="batch_abc"), list)
    assert client.retrieve_batch("batch_abc").id
    assert client.cancel_batch("batch_abc").id


def test_a_create_prism_rejects_is_a_clear_api_error(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.create_batch("file-abc123", CHAT, completion_window="48h")
    error = caught.value
    assert error.status == 422
    assert error.exit_code == 3
    # Clear: the message says which field broke which rule, not just "HTTP 422".
    assert "completion_window" in str(error), str(error)


def test_a_create_for_an_endpoint_the_spec_does_not_know_is_refused(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.create_batch("file-abc123", "/v1/not-an-endpoint")
    assert caught.value.status == 422
    assert "endpoint" in str(caught.value), str(caught.value)


def test_cli_submit_is_accepted_end_to_end(prism_server: PrismServer, tmp_path: Path) -> None:
    """The real CLI: re-run check (list), upload and create, all as the spec wants them."""
    result = run_batchkit(
        "submit",
        str(batch_file(tmp_path)),
        "--profile",
        "openai",
        "--base-url",
        prism_server.openai_base_url,
        "--metadata",
        "run=prism",
        "--read-timeout",
        "30",
        "--format",
        "json",
        env=clean_env(OPENAI_API_KEY=KEY),
    )
    assert result.returncode == 0, explain(result)
    document = json_out(result)
    assert document["reused"] is False
    assert document["batch_id"] and document["file_id"]
    assert KEY not in result.stdout + result.stderr


def test_cli_without_a_key_fails_before_sending(prism_server: PrismServer, tmp_path: Path) -> None:
    result = run_batchkit(
        "status",
        "batch_abc",
        "--profile",
        "openai",
        "--base-url",
        prism_server.openai_base_url,
        env=clean_env(),
    )
    assert result.returncode == 2, explain(result)
    assert "OPENAI_API_KEY" in result.stderr
