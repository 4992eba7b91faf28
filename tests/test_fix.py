"""build --fix (batchkit.fix): the repairs, on real peer files and on made-up mistakes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from batchkit.errors import UsageError
from batchkit.fix import fix_file
from batchkit.validate import validate_file
from tests.helpers import CHAT, PEER_DATA


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("litellm/openai_batch_completions_router.jsonl", {"url_corrected": 3}),
        ("litellm/openai_endpoints_input_azure.jsonl", {"url_corrected": 1}),
        ("litellm/batch_job_results_furniture.jsonl", {"blank_lines": 1}),
        ("litellm/test_batch_rate_limiting_integration.jsonl", {"blank_lines": 1}),
        ("vllm/openai_example_batch.jsonl", {"crlf": 2}),
    ],
)
def test_peer_files_with_fixable_mistakes_come_out_valid(
    tmp_path: Path, name: str, changes: dict[str, int]
) -> None:
    source = PEER_DATA / name
    mistaken = not validate_file(source).passed(strict=True) or b"\r\n" in source.read_bytes()
    assert mistaken, "the peer file has a fixable mistake"
    result = fix_file(source, output=tmp_path / "fixed.jsonl")
    assert result.fixed and result.changes == changes
    report = validate_file(tmp_path / "fixed.jsonl")
    assert report.valid and not any(w.code == "blank_line" for w in report.warnings)
    data = (tmp_path / "fixed.jsonl").read_bytes()
    assert b"\r" not in data and b"\n\n" not in data and data.endswith(b"}\n")
    original = [orjson.loads(line) for line in source.read_bytes().splitlines() if line.strip()]
    fixed = [orjson.loads(line) for line in data.splitlines()]
    assert [line["body"] for line in fixed] == [line["body"] for line in original]
    assert [line["custom_id"] for line in fixed] == [line["custom_id"] for line in original]


def test_duplicates_are_refused_with_their_lines(tmp_path: Path) -> None:
    result = fix_file(PEER_DATA / "litellm/batch_small.jsonl", output=tmp_path / "out.jsonl")
    assert not result.fixed and result.build is None
    assert [issue.line for issue in result.errors] == list(range(4, 13))
    assert {issue.code for issue in result.errors} == {"duplicate_custom_id"}
    assert result.errors[0].message.startswith('"request-1" was already used on line 1')
    assert list(tmp_path.iterdir()) == []


def test_array_bom_and_missing_keys(tmp_path: Path) -> None:
    records = [
        {
            "custom_id": "request-000002",
            "body": {"model": "m", "messages": [{"role": "user", "content": "a"}]},
        },
        {
            "url": "chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "b"}]},
        },
    ]
    source = tmp_path / "in.json"
    source.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(records, option=orjson.OPT_INDENT_2))
    result = fix_file(source, output=tmp_path / "out.jsonl", endpoint=CHAT)
    assert result.changes == {
        "byte_order_mark": 1,
        "json_array": 1,
        "method": 2,
        "url": 1,
        "url_corrected": 1,
        "custom_id": 1,
    }
    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [line["custom_id"] for line in lines] == ["request-000002", "request-000002-2"]
    assert all(line["url"] == CHAT and line["method"] == "POST" for line in lines)
    assert validate_file(tmp_path / "out.jsonl").passed(strict=True)


def test_url_comes_from_the_first_known_url(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    body = {"model": "m", "input": "x"}
    source.write_bytes(
        orjson.dumps({"custom_id": "a", "body": body})
        + b"\n"
        + orjson.dumps({"custom_id": "b", "url": "/embeddings", "body": body})
        + b"\n"
    )
    result = fix_file(source, output=tmp_path / "out.jsonl")
    assert result.endpoint == "/v1/embeddings"
    assert validate_file(tmp_path / "out.jsonl").valid


def test_what_cannot_be_repaired_is_listed_as_validate_lists_it(tmp_path: Path) -> None:
    good = orjson.dumps(
        {
            "custom_id": "a",
            "url": CHAT,
            "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        }
    )
    bad_schema = orjson.dumps(
        {"custom_id": "b", "url": CHAT, "body": {"model": "m", "messages": []}}
    )
    source = tmp_path / "in.jsonl"
    source.write_bytes(good + b"\n\n{not json\n" + bad_schema + b"\n")
    result = fix_file(source, output=tmp_path / "out" / "x.jsonl")
    expected = [i for i in validate_file(source).errors if i.param != "method"]
    assert [(i.line, i.code) for i in result.errors] == [
        (3, "invalid_json_line"),
        (4, "invalid_request"),
    ]
    assert [(i.line, i.code, i.message) for i in result.errors] == [
        (i.line, i.code, i.message) for i in expected
    ]
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_no_endpoint_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"custom_id": "a", "body": {"model": "m", "prompt": "x"}}\n')
    with pytest.raises(UsageError, match="pass the endpoint"):
        fix_file(source, output=tmp_path / "out.jsonl")
    assert fix_file(source, output=tmp_path / "out.jsonl", endpoint="/v1/completions").fixed
