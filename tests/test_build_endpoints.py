"""``batchkit build --prompt-column`` for the endpoints added in issue 10: a CSV of prompts
becomes the body each endpoint takes, valid under ``validate --strict`` (the real CLI)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.servers.cli import clean_env, explain, run_batchkit

PROMPTS = "id,text\na,Tell me a joke\nb,Write a haiku about rain\n"


def _build(tmp_path: Path, endpoint: str, *extra: str) -> list[dict]:  # type: ignore[type-arg]
    source = tmp_path / "prompts.csv"
    source.write_text(PROMPTS, encoding="utf-8")
    out = tmp_path / "batch.jsonl"
    args = ("build", str(source), "--prompt-column", "text", "--id-column", "id")
    built = run_batchkit(
        *args, "--endpoint", endpoint, "--model", "m-1", *extra, "-o", str(out), env=clean_env()
    )
    assert built.returncode == 0, explain(built)
    checked = run_batchkit("validate", "--strict", str(out), env=clean_env())
    assert checked.returncode == 0, explain(checked)
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


@pytest.mark.parametrize(
    ("endpoint", "key"),
    [
        ("/v1/responses", "input"),
        ("/v1/moderations", "input"),
        ("/v1/images/generations", "prompt"),
    ],
)
def test_a_prompt_becomes_the_endpoints_own_field(tmp_path: Path, endpoint: str, key: str) -> None:
    requests = _build(tmp_path, endpoint)
    assert [(r["custom_id"], r["url"], r["body"]) for r in requests] == [
        ("a", endpoint, {"model": "m-1", key: "Tell me a joke"}),
        ("b", endpoint, {"model": "m-1", key: "Write a haiku about rain"}),
    ]


def test_system_becomes_the_instructions_of_a_response(tmp_path: Path) -> None:
    requests = _build(tmp_path, "/v1/responses", "--system", "Answer in French.")
    assert requests[0]["body"] == {
        "model": "m-1",
        "instructions": "Answer in French.",
        "input": "Tell me a joke",
    }


def test_system_is_refused_where_the_body_has_no_place_for_it(tmp_path: Path) -> None:
    source = tmp_path / "prompts.csv"
    source.write_text(PROMPTS, encoding="utf-8")
    result = run_batchkit(
        "build",
        str(source),
        "--prompt-column",
        "text",
        "--endpoint",
        "/v1/moderations",
        "--model",
        "m",
        "--system",
        "x",
        "-o",
        str(tmp_path / "o.jsonl"),
        env=clean_env(),
    )
    assert result.returncode == 2, explain(result)
    assert "--system applies to /v1/chat/completions and /v1/responses only" in result.stderr
