"""Profiles as a user meets them: which API each reaches, and what each refuses before upload.

Every test runs ``python -m batchkit`` as a real subprocess against the fake orq server
(tests/servers/fake_orq.py), which serves both of orq's APIs and records every request.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.helpers import jsonl, request
from tests.servers.cli import batch_file, clean_env, explain, run_batchkit
from tests.servers.fake_orq import FakeOrq

SECRET = "sk-orq-profiles-S3CRET-4e1d"


@pytest.fixture
def fake(fake_orq: FakeOrq) -> FakeOrq:
    fake_orq.state.api_key = SECRET
    return fake_orq


def submit(fake: FakeOrq, *args: str) -> tuple[int, str, str]:
    result = run_batchkit(
        "submit", *args, "--base-url", fake.url, env=clean_env(ORQ_API_KEY=SECRET)
    )
    assert "Traceback" not in result.stderr, explain(result)
    return result.returncode, result.stdout, result.stderr


def responses_file(directory: Path) -> Path:
    """A valid ``/v1/responses`` file: served by orq's router, not by its older API."""
    path = directory / "responses.jsonl"
    lines = [
        request(f"r{n}", url="/v1/responses", body={"model": "openai/gpt-4o-mini", "input": "hi"})
        for n in range(2)
    ]
    path.write_bytes(jsonl(*lines))
    return path


@pytest.mark.parametrize(
    ("profile", "batches"),
    [([], "/v3/router/batches"), (["--profile", "orq-v2"], "/v2/proxy/batch")],
)
def test_submit_reaches_the_api_of_its_profile(
    fake: FakeOrq, tmp_path: Path, profile: list[str], batches: str
) -> None:
    code, stdout, _ = submit(fake, str(batch_file(tmp_path)), *profile, "--format", "json")
    assert code == 0, stdout
    creates = fake.requests_to("create")
    assert [r.path for r in creates] == [batches]
    assert json_out_text(stdout)["batch"]["id"] in fake.state.batches


def json_out_text(stdout: str) -> dict[str, object]:
    document = orjson.loads(stdout)
    assert isinstance(document, dict)
    return document


def test_the_retired_orq_router_names_its_replacement(fake: FakeOrq, tmp_path: Path) -> None:
    code, _, stderr = submit(fake, str(batch_file(tmp_path)), "--profile", "orq-router")
    assert code == 2
    assert "unknown profile 'orq-router'" in stderr and "'orq'" in stderr
    assert fake.requests == []


def test_a_file_for_an_endpoint_the_profile_does_not_serve_is_refused_before_upload(
    fake: FakeOrq, tmp_path: Path
) -> None:
    path = responses_file(tmp_path)

    code, stdout, stderr = submit(fake, str(path), "--profile", "orq-v2", "--format", "json")

    assert code == 1, stderr
    assert fake.requests == []  # nothing sent, not even the re-run check's listing
    (issue,) = json_out_text(stdout)["validation"]["errors"]  # type: ignore[index]
    assert issue["code"] == "unsupported_endpoint" and issue["line"] is None
    message = issue["message"]
    assert "/v1/responses" in message
    assert "/v1/chat/completions, /v1/embeddings, /v1/completions" in message
    assert "nothing was sent" in stderr

    text = run_batchkit(
        "submit", str(path), "--profile", "orq-v2", "--base-url", fake.url,
        env=clean_env(ORQ_API_KEY=SECRET),
    )  # fmt: skip
    assert text.returncode == 1 and "unsupported_endpoint" in text.stdout, explain(text)


def test_the_router_serves_responses_files(fake: FakeOrq, tmp_path: Path) -> None:
    code, stdout, stderr = submit(fake, str(responses_file(tmp_path)), "--format", "json")
    assert code == 0, stderr
    (create,) = fake.requests_to("create")
    assert create.path == "/v3/router/batches"
    assert json_out_text(stdout)["request"]["endpoint"] == "/v1/responses"  # type: ignore[index]


def test_an_endpoint_option_the_profile_does_not_serve_is_refused_without_reading(
    fake: FakeOrq, tmp_path: Path
) -> None:
    missing = tmp_path / "never-read.jsonl"
    missing.write_bytes(b"not json at all\n")
    code, _, stderr = submit(
        fake, str(missing), "--profile", "orq-v2", "--endpoint", "/v1/moderations"
    )
    assert code == 1
    assert "unsupported_endpoint: the orq-v2 profile does not serve /v1/moderations" in stderr
    assert "it serves /v1/chat/completions, /v1/embeddings, /v1/completions" in stderr
    assert "invalid_json_line" not in stderr + _  # refused before the file was read
    assert fake.requests == []


def test_an_unsupported_completion_window_is_refused_with_the_profile_s_list(
    fake: FakeOrq, tmp_path: Path
) -> None:
    code, _, stderr = submit(fake, str(batch_file(tmp_path)), "--completion-window", "7d")
    assert code == 1
    assert "unsupported_completion_window" in stderr and "it accepts 24h" in stderr
    assert fake.requests == []

    code, _, stderr = submit(fake, str(batch_file(tmp_path)), "--completion-window", "24h")
    assert code == 0, stderr
    (batch,) = fake.state.batches.values()
    assert batch["completion_window"] == "24h"


def test_output_expires_after_is_sent_where_the_profile_takes_it(
    fake: FakeOrq, tmp_path: Path
) -> None:
    code, stdout, stderr = submit(
        fake, str(batch_file(tmp_path)), "--output-expires-after", "7d", "--format", "json"
    )
    assert code == 0, stderr
    (batch,) = fake.state.batches.values()
    expected = {"anchor": "created_at", "seconds": 7 * 86400}
    assert batch["output_expires_after"] == expected
    assert json_out_text(stdout)["request"]["output_expires_after"] == expected  # type: ignore[index]


def test_output_expires_after_is_refused_where_the_profile_does_not_take_it(
    fake: FakeOrq, tmp_path: Path
) -> None:
    path = str(batch_file(tmp_path))
    code, _, stderr = submit(fake, path, "--profile", "orq-v2", "--output-expires-after", "2h")
    assert code == 1
    assert "unsupported_option" in stderr and "profiles that do: openai, orq" in stderr

    for too_short_or_long in ("59m", "31d"):
        code, _, stderr = submit(fake, path, "--output-expires-after", too_short_or_long)
        assert code == 2 and "1 hour to 30 days" in stderr
    assert fake.requests == []


def test_help_says_which_orq_profile_is_which() -> None:
    result = run_batchkit("submit", "--help", env=clean_env())
    lines = result.stdout.splitlines()
    assert any("orq: " in line and "/v3/router/batches" in line for line in lines)
    assert any("orq-v2: " in line and "/v2/proxy/batch" in line for line in lines)


def test_dry_run_shows_the_router_paths(fake: FakeOrq, tmp_path: Path) -> None:
    result = run_batchkit(
        "submit", str(batch_file(tmp_path)), "--dry-run", "--base-url", fake.url, env=clean_env()
    )
    assert result.returncode == 0, explain(result)
    assert f"{fake.url}/v3/router/batches" in result.stdout
    assert fake.requests == []
