"""The ``azure`` profile: the key goes in ``api-key`` (never ``Authorization``), the base URL is
the user's own, and a file may hold 100,000 requests.

A small OpenAI-shaped server on loopback stands in for an Azure resource: it refuses any request
whose key is not in ``api-key`` or that carries an ``Authorization`` header (Azure reads one as an
Entra ID token), and records every request's headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.servers.cli import batch_file, clean_env, explain, run_batchkit

KEY = "azure-S3CRET-key-5c0ffee"


class _AzureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _AzureServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, dict(self.headers.items())))
        if self.headers.get("api-key") != KEY or "Authorization" in self.headers:
            self._send(401, {"error": {"code": "401", "message": "Access denied"}})
        elif self.command == "POST" and self.path == "/openai/v1/files":
            self._send(200, {"id": "file-1", "object": "file", "purpose": "batch", "bytes": 1})
        elif self.command == "POST" and self.path == "/openai/v1/batches":
            batch = {"id": "batch_1", "object": "batch", "status": "validating"}
            self._send(200, {**batch, "input_file_id": "file-1"})
        elif self.command == "GET" and self.path.startswith("/openai/v1/batches"):
            self._send(200, {"object": "list", "data": [], "has_more": False})
        else:
            self._send(404, {"error": {"code": "404", "message": "Resource not found"}})

    def _send(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _AzureServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AzureHandler)
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/openai/v1"


@pytest.fixture
def azure() -> Iterator[_AzureServer]:
    server = _AzureServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_key_goes_in_api_key_never_in_authorization_nor_the_log(
    azure: _AzureServer, tmp_path: Path
) -> None:
    result = run_batchkit(
        "submit", str(batch_file(tmp_path)), "--profile", "azure", "--base-url", azure.base_url,
        "-v", env=clean_env(AZURE_OPENAI_API_KEY=KEY),
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    assert [(method, path) for method, path, _ in azure.seen] == [
        ("GET", "/openai/v1/batches?limit=100"),
        ("POST", "/openai/v1/files"),
        ("POST", "/openai/v1/batches"),
    ]
    for _, _, headers in azure.seen:
        assert headers["api-key"] == KEY
        assert "Authorization" not in headers
    assert KEY not in result.stdout + result.stderr
    assert "'api-key': '[redacted]'" in result.stderr  # the -v log shows the header, not the key


def test_a_wrong_key_is_refused_without_showing_it(azure: _AzureServer, tmp_path: Path) -> None:
    wrong = KEY + "-wrong"
    result = run_batchkit(
        "list", "--profile", "azure", "--base-url", azure.base_url, "-v",
        env=clean_env(AZURE_OPENAI_API_KEY=wrong),
    )  # fmt: skip
    assert result.returncode == 3, explain(result)
    assert "AZURE_OPENAI_API_KEY" in result.stderr
    assert wrong not in result.stdout + result.stderr


def test_azure_needs_the_resource_s_base_url(tmp_path: Path) -> None:
    result = run_batchkit("list", "--profile", "azure", env=clean_env(AZURE_OPENAI_API_KEY=KEY))
    assert result.returncode == 2, explain(result)
    assert "--base-url" in result.stderr
    assert "https://RESOURCE.openai.azure.com/openai/v1" in result.stderr


def _requests_file(path: Path, count: int) -> Path:
    line = (
        '{"custom_id": "r%d", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"model": "gpt-4o-mini-batch", "messages": [{"role": "user", "content": "hi"}]}}\n'
    )
    with path.open("w") as out:
        out.writelines(line % number for number in range(count))
    return path


@pytest.mark.parametrize(("count", "valid"), [(60_000, True), (100_001, False)])
def test_an_azure_file_holds_up_to_100000_requests(tmp_path: Path, count: int, valid: bool) -> None:
    path = _requests_file(tmp_path / "azure.jsonl", count)
    result = run_batchkit(
        "validate", str(path), "--profile", "azure", "--format", "json", env=clean_env()
    )
    assert result.returncode == (0 if valid else 1), explain(result)
    (report,) = json.loads(result.stdout)["files"]
    codes = [error["code"] for error in report["errors"]]
    assert codes == ([] if valid else ["too_many_tasks"])
    if not valid:
        assert "100,000" in report["errors"][0]["message"]

    default = run_batchkit("validate", str(path), "--format", "json", env=clean_env())
    assert default.returncode == 1  # the orq profile's limit is 50,000
