"""Issue 7, the build side: what a new user broke in an afternoon, each pinned by a test.

The CLI items run ``python -m batchkit build`` as a real subprocess.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchkit.build import build_batch, escape_line_separators, fill
from batchkit.fix import fix_file
from batchkit.limits import MIB, Limits
from batchkit.validate import validate_file
from tests.helpers import CHAT, EMBEDDINGS, MODEL, REPO
from tests.servers.cli import clean_env, explain, run_batchkit

PROMPTS = REPO / "samples/build/prompts.csv"
#: Every character Python's str.splitlines() ends a line at, besides \n and \r.
SPLITTERS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e"
ENV = clean_env()
#: The options of a chat build that names its endpoint and model.
TO_CHAT = ("--endpoint", CHAT, "--model", MODEL)
#: The shipped CSV of ten questions, as chat requests.
PROMPTS_ARGS = (str(PROMPTS), "--prompt-column", "question", *TO_CHAT)


def build(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_batchkit("build", *args, env=ENV, timeout=timeout)


def build_csv(source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``build`` of a CSV whose ``question`` column holds chat prompts."""
    return build(str(source), "--prompt-column", "question", *TO_CHAT, *args)


def build_bytes(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``build`` with stdin and stdout as bytes (for ``-o -``)."""
    return subprocess.run(
        [sys.executable, "-m", "batchkit", "build", *args],
        input=stdin,
        capture_output=True,
        env=ENV,
        timeout=60,
        check=False,
    )


def prompts(path: Path) -> list[str]:
    """The user prompt of each request of a built chat file."""
    lines = path.read_bytes().splitlines()
    return [orjson.loads(line)["body"]["messages"][-1]["content"] for line in lines]


def chat(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def temps(directory: Path) -> list[str]:
    """The hidden temporaries in ``directory`` (which the build may not have made yet)."""
    if not directory.exists():
        return []
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


def csv_of(tmp_path: Path, cells: list[str], name: str = "in.csv") -> Path:
    """A CSV with one ``question`` column (every cell quoted: they may hold anything)."""
    path = tmp_path / name
    quoted = ['"' + cell.replace('"', '""') + '"' for cell in cells]
    path.write_text("question\n" + "\n".join(quoted) + "\n", encoding="utf-8", newline="")
    return path


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed run (never a traceback)."""
    assert "Traceback" not in result.stderr, explain(result)
    assert result.stderr.count("\n") == 1, explain(result)
    return result.stderr


# -- 1. line separators ---------------------------------------------------------------------


def test_line_separators_are_written_escaped(tmp_path: Path) -> None:
    cells = [f"before{char}after" for char in SPLITTERS] + ["plain", "tab\there"]
    source = csv_of(tmp_path, cells)
    out = tmp_path / "out.jsonl"
    result = build_csv(source, "-o", str(out))
    assert result.returncode == 0, explain(result)
    assert len(out.read_bytes().decode("utf-8").splitlines()) == len(cells)
    assert prompts(out) == cells
    assert validate_file(out).passed(strict=True)


@pytest.mark.parametrize(
    "text", ["plain", "é 日本 😀", "“quoted” – ok", "°C\u2028", "\u2029é", "x\u0085", "\u2028" * 3]
)
def test_escaping_is_exact(text: str) -> None:
    line = orjson.dumps({"text": text, "key\u2028": 1})
    escaped = escape_line_separators(line)
    assert orjson.loads(escaped) == orjson.loads(line)
    assert escaped.decode().splitlines() == [escaped.decode()]


def test_orjson_escapes_the_other_splitters_itself(tmp_path: Path) -> None:
    build_batch([chat(SPLITTERS)], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    data = (tmp_path / "q.jsonl").read_bytes()
    for escaped in (b"\\u2028", b"\\u2029", b"\\u0085", b"\\u000b", b"\\f", b"\\u001c"):
        assert escaped in data
    assert data.decode().count("\n") == 1 and len(data.decode().splitlines()) == 1


def test_fix_escapes_raw_line_separators(tmp_path: Path) -> None:
    record = {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": MODEL}}
    record["body"]["messages"] = [{"role": "user", "content": "one\u2028two\u0085three"}]
    plain = dict(record, custom_id="b")
    plain["body"] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps(record) + b"\n" + orjson.dumps(plain) + b"\n")
    assert len(source.read_bytes().decode().splitlines()) == 4  # the raw separators split it
    result = fix_file(source, output=tmp_path / "out.jsonl")
    assert result.changes == {"escaped_line_separators": 1}
    text = (tmp_path / "out.jsonl").read_bytes().decode()
    assert [orjson.loads(line) for line in text.splitlines()] == [record, plain]


# -- 2. the build's own output passes validate --strict -------------------------------------


def test_fill_is_just_under_the_near_limit_share() -> None:
    limits = Limits()
    assert fill(limits.max_requests, limits.near_limit_ratio) == 44_999
    assert fill(limits.max_bytes, limits.near_limit_ratio) == 180 * MIB - 1
    assert fill(limits.max_embedding_inputs, limits.near_limit_ratio) == 44_999
    assert [fill(n, 0.9) for n in (1, 2, 4, 5, 10, 11)] == [0, 1, 3, 4, 8, 9]
    assert fill(10, 1.5) == 10  # a ratio over 1 turns the warning off, never the limit


def test_split_output_passes_validate_strict(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b"".join(b'{"messages":[{"role":"user","content":"q%d"}]}\n' % n for n in range(60_000))
    )
    result = build(str(source), *TO_CHAT, "-o", str(tmp_path / "out/q.jsonl"), "--format", "json")
    assert result.returncode == 0, explain(result)
    files = orjson.loads(result.stdout)["files"]
    assert [entry["requests"] for entry in files] == [44_999, 15_001]
    for entry in files:
        checked = run_batchkit("validate", "--strict", entry["path"], env=ENV)
        assert checked.returncode == 0, explain(checked)


def test_embedding_inputs_are_filled_under_the_share_too(tmp_path: Path) -> None:
    items = [{"model": "e", "input": ["a", "b"]} for _ in range(10)]
    limits = Limits(max_embedding_inputs=10)  # fill 8: four requests a file
    result = build_batch(items, endpoint=EMBEDDINGS, output=tmp_path / "e.jsonl", limits=limits)
    assert result.counts == [4, 4, 2]
    for path in result.files:
        assert validate_file(path, limits=limits).passed(strict=True)


def test_a_request_over_the_fill_but_within_the_limit_gets_a_file_of_its_own(
    tmp_path: Path,
) -> None:
    small, big = chat("x"), chat("y" * 600)
    probe = build_batch([big], endpoint=CHAT, model=MODEL, output=tmp_path / "p.jsonl")
    limits = Limits(max_bytes=probe.bytes + 10)  # the big one is over 90% of a file
    result = build_batch(
        [small, big, small], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl", limits=limits
    )
    assert result.counts == [1, 1, 1]
    assert [w.code for w in validate_file(result.files[1], limits=limits).warnings] == [
        "near_limit"
    ]


# -- 10. SIGTERM and stale temporaries ------------------------------------------------------


def big_input(path: Path, count: int = 400_000) -> Path:
    line = b'{"messages":[{"role":"user","content":"question %d of a long build"}]}\n'
    path.write_bytes(b"".join(line % n for n in range(count)))
    return path


def start_build(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchkit", "build", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )


def long_build(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    """A build of 400,000 requests into ``out/m.jsonl`` (23 files), started; and ``out``."""
    source = big_input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    args = [str(source), *TO_CHAT, "-o", str(out / "m.jsonl"), "--max-requests", "20000"]
    return start_build(*args, *extra), out


def wait_for_temp(process: subprocess.Popen[str], directory: Path, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 60
    while len(temps(directory)) < count:
        assert process.poll() is None, "the build ended before writing a temporary file"
        assert time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.01)
    return temps(directory)


def test_sigterm_cleans_up_and_exits_143(tmp_path: Path) -> None:
    process, out = long_build(tmp_path)
    wait_for_temp(process, out)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert stderr == "batchkit: error: terminated\n"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("parts_done", [1, 3], ids=["first-file", "later-file"])
def test_ctrl_c_cleans_up_and_exits_130(tmp_path: Path, parts_done: int) -> None:
    """Ctrl-C while a file is written (the first, or after some are finished): no partial
    output, no temporary file, one line."""
    process, out = long_build(tmp_path)
    wait_for_temp(process, out, parts_done)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stdout == "" and stderr == "batchkit: error: interrupted\n"
    assert list(out.iterdir()) == []


def test_a_build_after_a_kill_9_removes_what_it_left(tmp_path: Path) -> None:
    process, out = long_build(tmp_path)
    wait_for_temp(process, out)
    process.kill()  # SIGKILL: no cleanup can run; the kernel drops the process's locks
    process.communicate(timeout=60)
    left = temps(out)
    assert left
    for name in left:  # the few seconds that tell a leftover from a temporary being created
        os.utime(out / name, (time.time() - 60,) * 2)
    again = build(*PROMPTS_ARGS, "-o", str(out / "m.jsonl"))
    assert again.returncode == 0, explain(again)
    assert temps(out) == []


def test_a_later_build_removes_stale_temps_only(tmp_path: Path) -> None:
    long_ago = time.time() - 3600
    stale = tmp_path / ".q.0123abcd.tmp"
    fresh = tmp_path / ".q.89abcdef.tmp"
    locked = tmp_path / ".q.deadbeef.tmp"
    others = [tmp_path / ".q.xyz.tmp", tmp_path / ".r.0123abcd.tmp", tmp_path / "q.0123abcd.tmp"]
    for path in (stale, fresh, locked, *others):
        path.write_text("partial")
    for path in (stale, locked, *others):
        os.utime(path, (long_ago, long_ago))
    with locked.open("rb") as holder:  # a live build holds a lock on each of its temporaries
        fcntl.flock(holder, fcntl.LOCK_EX)
        build_batch([chat("a")], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    assert not stale.exists()
    assert all(path.exists() for path in (fresh, locked, *others))


def test_a_concurrent_build_keeps_the_live_builds_temps(tmp_path: Path) -> None:
    process, out = long_build(tmp_path, "--force")
    # Two temporaries: the first file is finished, so nothing touches it until the rename.
    for name in wait_for_temp(process, out, 2):  # as if the long build had started long ago
        os.utime(out / name, (time.time() - 3600,) * 2)
    other = build(*PROMPTS_ARGS, "-o", str(out / "m.jsonl"), "--force")
    assert other.returncode == 0, explain(other)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert stdout.startswith("wrote 23 files, 400,000 requests")
    assert temps(out) == []


# -- 12. an empty prompt cell; --fix and the method's case ----------------------------------


def test_empty_prompt_cell_is_an_error_with_its_csv_line(tmp_path: Path) -> None:
    source = csv_of(tmp_path, ["first", "  ", "third"])
    out = tmp_path / "q.jsonl"
    result = build_csv(source, "-o", str(out))
    assert result.returncode == 1
    message = one_line_error(result)
    assert message.startswith(f"batchkit: error: {source}:3: ")
    assert "empty_prompt" in message and "'question'" in message
    assert not out.exists()
    skipped = build_csv(source, "-o", str(out), "--skip-invalid")
    assert skipped.returncode == 0, explain(skipped)
    assert prompts(out) == ["first", "third"]
    rejects = [
        orjson.loads(line) for line in (tmp_path / "q.rejects.jsonl").read_bytes().splitlines()
    ]
    assert [(row["index"], row["errors"][0]["code"]) for row in rejects] == [(1, "empty_prompt")]


def test_fix_corrects_the_case_of_the_method(tmp_path: Path) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    records = [
        {"custom_id": "a", "method": "post", "url": CHAT, "body": body},
        {"custom_id": "b", "method": " POST ", "url": CHAT, "body": body},
        {"custom_id": "c", "method": "POST", "url": CHAT, "body": body},
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    result = fix_file(source, output=tmp_path / "out.jsonl")
    assert result.changes == {"method_case": 2}
    written = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [line["method"] for line in written] == ["POST"] * 3
    assert validate_file(tmp_path / "out.jsonl").passed(strict=True)


def test_fix_still_refuses_another_method(tmp_path: Path) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        orjson.dumps({"custom_id": "a", "method": "GET", "url": CHAT, "body": body}) + b"\n"
    )
    result = fix_file(source, output=tmp_path / "out.jsonl")
    assert [issue.code for issue in result.errors] == ["invalid_method"]


# -- 13. -o - ---------------------------------------------------------------------------------


def test_output_dash_writes_the_file_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    assert build(*PROMPTS_ARGS, "-o", str(out)).returncode == 0
    completed = build_bytes(*PROMPTS_ARGS, "-o", "-")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == out.read_bytes()
    assert completed.stderr.decode().startswith("wrote 1 file, 10 requests, ")
    quiet = build(*PROMPTS_ARGS, "-o", "-", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.encode() == out.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["q.jsonl"]


def test_output_dash_needing_several_files_is_a_usage_error(tmp_path: Path) -> None:
    result = build(*PROMPTS_ARGS, "-o", "-", "--max-requests", "5")
    assert result.returncode == 2, explain(result)
    assert result.stdout == ""
    message = one_line_error(result)
    assert "3 files" in message and "-o NAME.jsonl" in message


def test_fix_to_stdout(tmp_path: Path) -> None:
    source = REPO / "samples/build/no_v1.jsonl"
    out = tmp_path / "fixed.jsonl"
    assert build("--fix", str(source), "-o", str(out)).returncode == 0
    result = build("--fix", str(source), "-o", "-")
    assert result.returncode == 0, explain(result)
    assert result.stdout.encode() == out.read_bytes()
    assert "corrected the url" in result.stderr


# -- 7. names and encodings -------------------------------------------------------------------


def test_output_that_is_only_the_suffix_needs_a_name(tmp_path: Path) -> None:
    result = build(*PROMPTS_ARGS, "-o", str(tmp_path / "out/.jsonl"))
    assert result.returncode == 2
    assert "needs a file name before .jsonl" in one_line_error(result)


UTF16_INPUTS = {
    "in.jsonl": '{"messages": [{"role": "user", "content": "hi"}]}\n',
    "in.json": '[{"messages": [{"role": "user", "content": "hi"}]}]\n',
    "in.csv": "question\nhi\n",
}


@pytest.mark.parametrize("name", sorted(UTF16_INPUTS))
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_utf16_input_is_explained(tmp_path: Path, name: str, encoding: str) -> None:
    source = tmp_path / name
    source.write_bytes(UTF16_INPUTS[name].encode(encoding))
    extra = ["--prompt-column", "question"] if name.endswith(".csv") else []
    result = build(str(source), *extra, *TO_CHAT, "-o", str(tmp_path / "q.jsonl"))
    assert result.returncode == 1, explain(result)
    message = one_line_error(result)
    assert message.startswith(f"batchkit: error: {source}: the file is UTF-16")
    assert "iconv -f UTF-16 -t UTF-8" in message


NOT_UTF8 = {
    "in.jsonl": b'{"messages": [{"role": "user", "content": "ok"}]}\n'
    b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n',
    "in.json": b'[{"messages": [{"role": "user", "content": "ok"}]},\n'
    b'{"messages": [{"role": "user", "content": "caf\xe9"}]}]\n',
    "in.csv": b"question\nok\ncaf\xe9\n",
}


@pytest.mark.parametrize("name", sorted(NOT_UTF8))
def test_bytes_that_are_not_utf8_are_named_with_their_line(tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    source.write_bytes(NOT_UTF8[name])
    extra = ["--prompt-column", "question"] if name.endswith(".csv") else []
    result = build(str(source), *extra, *TO_CHAT, "-o", str(tmp_path / "q.jsonl"))
    assert result.returncode == 1, explain(result)
    message = one_line_error(result)
    line = 3 if name.endswith(".csv") else 2
    assert message.startswith(f"batchkit: error: {source}:{line}: ")
    assert "not UTF-8" in message and "save the file as UTF-8" in message


# -- odd input a new user tries ---------------------------------------------------------------


def test_over_long_line_is_reported_by_its_length(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    huge = orjson.dumps(chat("x" * 5000)) + b"\n"
    source.write_bytes(orjson.dumps(chat("a")) + b"\n" + huge)
    result = build(str(source), *TO_CHAT, "-o", str(tmp_path / "q.jsonl"), "--max-bytes", "2000")
    assert result.returncode == 1, explain(result)
    message = one_line_error(result)
    assert message.startswith(f"batchkit: error: {source}:2: ")
    assert f"{len(huge):,} bytes" in message and "2,000" in message


def test_fix_reports_an_over_long_line(tmp_path: Path) -> None:
    good = {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": MODEL, **chat("a")}}
    huge = dict(good, custom_id="b", body={"model": MODEL, **chat("x" * 5000)})
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(huge) + b"\n")
    result = fix_file(source, output=tmp_path / "out.jsonl", limits=Limits(max_bytes=2000))
    assert not result.fixed
    assert [(issue.line, issue.code) for issue in result.errors] == [(2, "file_too_large")]
    assert "2,000" in result.errors[0].message
    assert not (tmp_path / "out.jsonl").exists()


def test_empty_csv_says_it_has_no_header(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"")
    result = build_csv(source, "-o", str(tmp_path / "q.jsonl"))
    assert result.returncode == 1, explain(result)
    assert "no header row" in one_line_error(result)


def test_csv_with_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbfquestion\r\nfirst\r\nsecond\r\n")
    out = tmp_path / "q.jsonl"
    result = build_csv(source, "-o", str(out))
    assert result.returncode == 0, explain(result)
    assert prompts(out) == ["first", "second"]


def test_a_line_that_is_not_json_is_explained_as_validate_does_and_can_be_skipped(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    bad = b'{"messages": [{"role": "user", "content": "b"}], "temperature": NaN}\n'
    source.write_bytes(orjson.dumps(chat("a")) + b"\n" + bad + orjson.dumps(chat("c")) + b"\n")
    out = tmp_path / "q.jsonl"
    result = build(str(source), *TO_CHAT, "-o", str(out))
    assert result.returncode == 1, explain(result)
    message = one_line_error(result)
    assert message.startswith(f"batchkit: error: {source}:2: ")
    assert "NaN and Infinity are not JSON" in message
    skipped = build(str(source), *TO_CHAT, "-o", str(out), "--skip-invalid")
    assert skipped.returncode == 0, explain(skipped)
    assert len(out.read_bytes().splitlines()) == 2
    (reject,) = [
        orjson.loads(line) for line in (tmp_path / "q.rejects.jsonl").read_bytes().splitlines()
    ]
    assert reject["index"] == 1 and reject["request"] == bad.decode()


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "batchkit: error: the input has no requests; a batch needs one or more\n"),
        (b"\n\n", "batchkit: error: the input has no requests; a batch needs one or more\n"),
        (b"not json\n", "batchkit: error: <stdin>:1: invalid_json_line: this line is not valid"),
    ],
)
def test_without_endpoint_an_empty_or_broken_first_line_is_said_first(
    stdin: bytes, message: str
) -> None:
    result = build_bytes("-", "-o", "-", stdin=stdin)
    assert result.returncode == 1, result.stderr
    assert result.stdout == b""
    assert result.stderr.decode().startswith(message)
