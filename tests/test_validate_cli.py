"""``batchkit validate`` as a user runs it: formats, exit codes, stdin, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from batchkit.cli.main import cli
from batchkit.cli.report import github_annotation, github_escape_data, github_escape_property
from batchkit.validate import Issue
from tests.helpers import REPO, REPORT_KEYS, SAMPLES, jsonl, request

VALID = SAMPLES / "chat.jsonl"
INVALID = SAMPLES / "invalid" / "every_mistake.jsonl"


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, as a shell or CI would run it."""
    return subprocess.run(
        [sys.executable, "-m", "batchkit", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
    )


def invoke(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input)


def test_valid_file_exits_0_with_a_summary() -> None:
    result = run("validate", str(VALID))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        "(1.0 KB; limits: 0.0% of 50,000 requests, 0.0% of 200 MiB)"
    )
    assert "ok in 4 requests" in result.stdout


def test_invalid_file_exits_1_and_lists_each_error_with_its_line() -> None:
    result = run("validate", str(INVALID))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{INVALID}:8: invalid_url: " in lines[6]
    assert lines[-1].startswith(f"{INVALID}: 11 errors, 3 warnings in 13 requests")
    assert "Traceback" not in result.stderr


def test_stdin_with_dash() -> None:
    result = run("validate", "-", input=VALID.read_bytes())
    assert result.returncode == 0 and result.stdout.startswith("<stdin>: ok in 4 requests")


def test_several_files_fail_if_any_fails() -> None:
    result = invoke("validate", str(VALID), str(INVALID), "--format", "json")
    assert result.exit_code == 1
    document = orjson.loads(result.output)
    assert [f["valid"] for f in document["files"]] == [True, False]
    assert document["valid"] is False


def test_json_format_is_the_documented_document() -> None:
    result = invoke("validate", str(INVALID), "--format", "json", "--max-errors", "2")
    assert result.exit_code == 1
    document = orjson.loads(result.output)
    assert set(document) == {"valid", "files"}
    (file,) = document["files"]
    assert set(file) == REPORT_KEYS
    assert file["errors_total"] == 11 and len(file["errors"]) == 2
    assert file["errors"][0] == {
        "line": 1,
        "code": "byte_order_mark",
        "param": None,
        "message": file["errors"][0]["message"],
    }
    assert (file["endpoint"], file["model"], file["requests"]) == (
        "/v1/chat/completions",
        "openai/gpt-4o-mini",
        13,
    )


def test_github_format_annotates_the_lines() -> None:
    result = run("validate", str(INVALID), "--format", "github")
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"::error file={INVALID},line=1,title=byte_order_mark::")
    assert f"::warning file={INVALID},line=13,title=blank_line::blank line" in result.stdout
    assert "11 errors" in result.stderr  # the summary goes to the log, not the annotations


def test_github_escaping() -> None:
    assert github_escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert github_escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    # A message quotes the file: its control characters are shown as escapes, and what
    # GitHub would still read (%) is escaped for it, so one issue is one annotation.
    issue = Issue(3, "invalid_url", "url", 'url is "/x"\n::error::100%\r\x1b')
    assert github_annotation("dir,1/a:b.jsonl", issue) == (
        "::error file=dir%2C1/a%3Ab.jsonl,line=3,title=invalid_url::"
        'url is "/x"\\n::error::100%25\\r\\x1b'
    )


def test_strict_fails_on_warnings(tmp_path: Path) -> None:
    path = tmp_path / "warn.jsonl"
    path.write_bytes(jsonl(request("a"), b"", request("b")))
    assert invoke("validate", str(path)).exit_code == 0
    strict = invoke("validate", str(path), "--strict", "--format", "json")
    assert strict.exit_code == 1
    assert orjson.loads(strict.output)["valid"] is False


def test_max_errors_caps_the_listing_not_the_count(tmp_path: Path) -> None:
    path = tmp_path / "dups.jsonl"
    path.write_bytes(jsonl(*(request("same") for _ in range(30))))
    result = invoke("validate", str(path), "--max-errors", "3")
    assert result.output.count("duplicate_custom_id") == 3
    assert "26 more not listed" in result.output
    assert "29 errors in 30 requests" in result.output


def test_quiet_prints_only_errors() -> None:
    result = invoke("validate", str(INVALID), "--quiet")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 11 and all(" warning: " not in line for line in lines)
    assert invoke("validate", str(VALID), "-q").output == ""


def test_limit_overrides_and_profiles() -> None:
    result = invoke("validate", str(VALID), "--max-requests", "3")
    assert result.exit_code == 1 and "too_many_tasks" in result.output
    result = invoke("validate", str(VALID), "--max-bytes", "1KB")
    assert result.exit_code == 1 and "file_too_large" in result.output
    result = invoke("validate", str(VALID), "--profile", "azure")
    assert result.exit_code == 0 and "of 100,000 requests" in result.output


def test_endpoint_option() -> None:
    result = invoke("validate", str(VALID), "--endpoint", "/v1/embeddings", "-q")
    assert result.exit_code == 1 and result.output.count("invalid_url") == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "missing.jsonl"], "missing.jsonl: no such file"),
        (["validate", "samples"], "samples: is a directory"),
        (["validate", "samples/chat.jsonl", "--profile", "nope"], "unknown profile 'nope'"),
        (["validate", "samples/chat.jsonl", "--max-bytes", "lots"], "is not a size"),
        (["validate", "samples/chat.jsonl", "--format", "xml"], "Invalid value for '--format'"),
        (["validate"], "Missing argument"),
        (["validate", "-", "-"], "stdin (-) can be read only once"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unreadable_bytes_never_traceback(tmp_path: Path) -> None:
    path = tmp_path / "noise.jsonl"
    path.write_bytes(bytes(range(256)) * 40 + b"\n\x00\xff{[\n")
    result = run("validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("batchkit, version ")
    help_text = run("validate", "--help").stdout
    for option in ("--format", "--strict", "--max-errors", "--profile", "--max-embedding-inputs"):
        assert option in help_text


def test_validate_imports_no_http_client_progress_bar_or_tokenizer() -> None:
    """The startup of ``batchkit validate`` (a pre-commit hook runs it per commit): each
    command's module is imported only when it runs, the tokenizer only with --tokens."""
    code = (
        "import sys\n"
        "from batchkit.cli.main import main\n"
        "sys.argv = ['batchkit', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'requests', 'tqdm', 'tiktoken', 'batchkit.build', 'batchkit.client'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )

    def imported(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO
        )
        return done.stdout.strip().splitlines()[-1]

    assert imported("validate", str(VALID)) == "[]"
    assert imported("validate", "--tokens", str(VALID)) == "['tiktoken']"


def test_each_command_is_found_by_its_name() -> None:
    from batchkit.cli.main import COMMANDS

    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name, name
    assert cli.list_commands(context) == sorted(COMMANDS)
    assert cli.get_command(context, "valdate") is None
    result = invoke("--help")
    assert result.exit_code == 0
    assert all(name in result.output for name in COMMANDS)
