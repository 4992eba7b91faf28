"""batchkit estimate: tokens, the output cap and the cost range, through the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from batchkit.tokens import count_request_tokens
from tests.servers.cli import clean_env, explain, json_out, run_batchkit


def _chat(path: Path, model: str = "openai/gpt-4o-mini", caps: bool = True) -> Path:
    lines = []
    for index in range(25):
        body: dict[str, object] = {
            "model": model,
            "messages": [
                {"role": "system", "content": "Reply with one word."},
                {"role": "user", "content": f"Is {index} prime?"},
            ],
        }
        if caps or index:
            body["max_tokens"] = 10 + index
        lines.append(
            {
                "custom_id": f"r{index}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
        )
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def _prompt(path: Path) -> int:
    return sum(
        count_request_tokens("/v1/chat/completions", orjson.loads(line)["body"]).prompt
        for line in path.read_bytes().splitlines()
    )


def test_cost_range_from_the_options(tmp_path: Path) -> None:
    path = _chat(tmp_path / "chat.jsonl")
    prompt, cap = _prompt(path), sum(10 + index for index in range(25))
    completed = run_batchkit(
        "estimate",
        str(path),
        "--input-price",
        "2.5",
        "--output-price",
        "10",
        "--format",
        "json",
        env=clean_env(),
    )
    assert completed.returncode == 0, explain(completed)
    entry = json_out(completed)["files"][0]
    assert entry["tokens"] == {
        "prompt": prompt,
        "max_output": cap,
        "encoding": "o200k_base",
        "exact": True,
    }
    assert entry["cost"]["min"] == pytest.approx(prompt * 2.5 * 0.5 / 1e6)
    assert entry["cost"]["max"] == pytest.approx((prompt * 2.5 + cap * 10) * 0.5 / 1e6)
    full = run_batchkit(
        "estimate",
        str(path),
        "--input-price",
        "2.5",
        "--output-price",
        "10",
        "--discount",
        "0",
        "--format",
        "json",
        env=clean_env(),
    )
    assert json_out(full)["files"][0]["cost"]["min"] == pytest.approx(prompt * 2.5 / 1e6)
    text = run_batchkit(
        "estimate", str(path), "--input-price", "2.5", "--output-price", "10", env=clean_env()
    )
    assert text.stdout.splitlines() == [
        f"{path}: tokens: {prompt:,} prompt (o200k_base, exact), output cap {cap:,}",
        f"{path}: cost: ${prompt * 2.5 * 0.5 / 1e6:.6f} (prompts only) to "
        f"${(prompt * 2.5 + cap * 10) * 0.5 / 1e6:.6f} (full output cap), "
        "at 50% off the list prices",
    ]


def test_prices_file_by_model_and_no_upper_bound(tmp_path: Path) -> None:
    mini = _chat(tmp_path / "mini.jsonl", caps=False)
    four = _chat(tmp_path / "four.jsonl", model="gpt-4")
    prices = tmp_path / "prices.json"
    prices.write_text(
        '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}, "gpt-4": {"input": 30, "output": 60}}'
    )
    completed = run_batchkit(
        "estimate",
        str(mini),
        str(four),
        "--prices",
        str(prices),
        "--format",
        "json",
        env=clean_env(),
    )
    assert completed.returncode == 0, explain(completed)
    document = json_out(completed)
    first, second = document["files"]
    assert first["tokens"]["max_output"] is None and first["cost"]["max"] is None
    assert first["cost"]["min"] == pytest.approx(_prompt(mini) * 0.15 * 0.5 / 1e6)
    assert (second["tokens"]["encoding"], second["cost"]["input_price"]) == ("cl100k_base", 30)
    assert document["total"]["prompt"] == _prompt(mini) + _prompt(four)
    assert document["total"]["cost"]["max"] is None


def test_no_prices_counts_only(tmp_path: Path) -> None:
    path = _chat(tmp_path / "chat.jsonl", model="anthropic/claude-3-5-haiku")
    completed = run_batchkit("estimate", str(path), env=clean_env())
    assert completed.returncode == 0, explain(completed)
    assert (
        completed.stdout
        == f"{path}: tokens: {_prompt(path):,} prompt (o200k_base, estimate), output cap 550\n"
    )


@pytest.mark.parametrize(
    ("args", "prices", "message"),
    [
        (["--encoding", "r50k_base"], None, "'r50k_base' is not one of"),
        (["--input-price", "-1", "--output-price", "1"], None, "-1.0 is not in the range"),
        (["--input-price", "1"], None, "--input-price and --output-price go together"),
        (["--discount", "1.5"], None, "1.5 is not in the range"),
        (["--prices"], "{not json", "not JSON"),
        (["--prices"], "[1, 2]", "expected {"),
        (
            ["--prices"],
            '{"gpt-4o-mini": {"input": -1, "output": 1}}',
            "needs input and output prices",
        ),
        (
            ["--prices"],
            '{"gpt-4": {"input": 1, "output": 1}}',
            "no price for model 'openai/gpt-4o-mini'",
        ),
        (["--prices", "missing.json"], None, "missing.json: no such file"),
    ],
)
def test_bad_input_is_a_usage_error(
    tmp_path: Path, args: list[str], prices: str | None, message: str
) -> None:
    path = _chat(tmp_path / "chat.jsonl")
    if prices is not None:
        (tmp_path / "prices.json").write_text(prices)
        args = [*args, str(tmp_path / "prices.json")]
    elif args == ["--prices", "missing.json"]:
        args = ["--prices", str(tmp_path / "missing.json")]
    completed = run_batchkit("estimate", str(path), *args, env=clean_env())
    assert completed.returncode == 2, explain(completed)
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_readme_tokens_example_is_what_batchkit_prints() -> None:
    """The console block of the README's "Tokens and cost" section, run as written."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme.split("## Tokens and cost", 1)[1]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    commands = block.split("$ ")[1:]
    assert len(commands) == 2
    for command in commands:
        line, *expected = command.rstrip("\n").split("\n")
        args = line.split()
        assert args[0] == "batchkit"
        completed = subprocess.run(
            [sys.executable, "-m", "batchkit", *args[1:]],
            capture_output=True,
            text=True,
            env=clean_env(),
            cwd=root,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, explain(completed)
        assert completed.stdout.splitlines() == expected
