"""``batchkit build``: inputs (JSONL, JSON array, CSV, stdin), output, errors, --fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from batchkit.cli.main import cli
from batchkit.validate import validate_file
from tests.helpers import CHAT, MODEL, PEER_DATA, REPO

PROMPTS = REPO / "samples/build/prompts.csv"
#: The shipped CSV of questions, turned into chat requests.
CSV_TO_CHAT = [str(PROMPTS), "--prompt-column", "question", "--endpoint", CHAT, "--model", MODEL]


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["build", *args], input=stdin)


def read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_csv_readme_example(tmp_path: Path) -> None:
    out = tmp_path / "out/questions.jsonl"
    result = run(
        str(PROMPTS),
        "--prompt-column",
        "question",
        "--system",
        "Answer briefly.",
        "--endpoint",
        CHAT,
        "--model",
        MODEL,
        "-o",
        str(out),
        "--max-requests",
        "5",  # files are filled to under 90% of each limit: 4 requests
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("wrote 3 files, 10 requests, ")
    assert f"{tmp_path}/out/questions-001.jsonl (4)" in result.stdout
    lines = [line for n in (1, 2, 3) for line in read(tmp_path / f"out/questions-00{n}.jsonl")]
    assert lines[0]["custom_id"] == "request-000001"
    assert lines[0]["body"]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert lines[3]["body"]["messages"][1]["content"] == 'Who wrote "Pride and Prejudice"?'


def test_csv_id_column_and_json_format(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    result = run(
        str(PROMPTS),
        "--prompt-column",
        "question",
        "--id-column",
        "id",
        "--endpoint",
        CHAT,
        "--model",
        MODEL,
        "-o",
        str(out),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.stdout)
    assert document["requests"] == 10 and document["files"][0]["path"] == str(out)
    assert read(out)[9]["custom_id"] == "q-010"


def test_jsonl_full_lines_infer_the_endpoint_and_stdin(tmp_path: Path) -> None:
    lines = b"".join(
        orjson.dumps({"url": "/v1/embeddings", "body": {"model": "e", "input": f"t{n}"}}) + b"\n\n"
        for n in range(3)
    )
    out = tmp_path / "e.jsonl"
    result = run("-", "-o", str(out), stdin=lines)
    assert result.exit_code == 0, result.output
    assert validate_file(out).valid and len(read(out)) == 3


def test_json_array_and_several_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(
        orjson.dumps([{"messages": [{"role": "user", "content": "a"}]}])
    )
    (tmp_path / "b.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "b"}]}\n')
    out = tmp_path / "q.jsonl"
    result = run(
        str(tmp_path / "a.json"),
        str(tmp_path / "b.jsonl"),
        "--endpoint",
        CHAT,
        "--model",
        MODEL,
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert [line["custom_id"] for line in read(out)] == ["request-000001", "request-000002"]


def test_invalid_request_is_one_line_with_its_place(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"messages": [{"role": "user", "content": "a"}]}\n\n{"messages": []}\n')
    result = run(str(source), "--endpoint", CHAT, "--model", MODEL, "-o", str(tmp_path / "q.jsonl"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"batchkit: error: {source}:3: request at index 1")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


def test_skip_invalid_reports_the_rejects(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"messages": [{"role": "user", "content": "a"}]}\n{"messages": []}\n')
    result = run(
        str(source),
        "--endpoint",
        CHAT,
        "--model",
        MODEL,
        "-o",
        str(tmp_path / "q.jsonl"),
        "--skip-invalid",
    )
    assert result.exit_code == 0, result.output
    assert f"rejected 1 invalid: {tmp_path}/q.rejects.jsonl" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt-column", "nope", "--endpoint", CHAT], "no column 'nope'"),
        (["--prompt-column", "question"], "--endpoint is required"),
        (["--system", "x"], "need --prompt-column"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(str(PROMPTS), *args, "-o", str(tmp_path / "q.jsonl"))
    assert result.exit_code == 2
    assert message in result.stderr


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    out.write_text("old")
    args = [*CSV_TO_CHAT, "-o", str(out)]
    result = run(*args)
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert out.read_text() == "old"
    assert run(*args, "--force").exit_code == 0
    assert len(read(out)) == 10


def test_fix_peer_file(tmp_path: Path) -> None:
    out = tmp_path / "fixed.jsonl"
    result = run(
        "--fix", str(PEER_DATA / "litellm/openai_batch_completions_router.jsonl"), "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "corrected the url to the batch endpoint (3)" in result.stdout
    assert validate_file(out).valid


def test_fix_refuses_duplicates_with_their_lines(tmp_path: Path) -> None:
    source = PEER_DATA / "litellm/batch_small.jsonl"
    result = run("--fix", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f'{source}:4: duplicate_custom_id: "request-1" was already used on line 1; '
        "custom_id must be unique in the file"
    )
    assert "9 errors that --fix cannot repair; nothing was written" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_real_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "out/questions.jsonl"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchkit",
            "build",
            *CSV_TO_CHAT,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"wrote 1 file, 10 requests, {_size(out)}: {out} (10)\n"
    assert completed.stderr == ""  # not a terminal: no progress bar
    assert validate_file(out).passed(strict=True)


def _size(path: Path) -> str:
    from batchkit.cli.report import human_bytes

    return human_bytes(path.stat().st_size)
