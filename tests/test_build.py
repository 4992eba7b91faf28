"""build_batch: items, ids, validation, splitting at every limit, atomicity."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchkit import build as build_module
from batchkit.build import InvalidRequestError, _SeenIds, build_batch, fill
from batchkit.errors import BatchkitError, InvalidInputError, UsageError
from batchkit.limits import Limits
from batchkit.validate import validate_file
from tests.helpers import CHAT, EMBEDDINGS, MODEL


def chat(text: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def listing(directory: Path) -> list[str]:
    """Every file in ``directory``, hidden temporaries included."""
    return sorted(path.name for path in directory.iterdir())


def assert_each_file_valid(paths: list[Path], endpoint: str, limits: Limits) -> None:
    for path in paths:
        report = validate_file(path, endpoint=endpoint, limits=limits)
        assert report.valid, [issue.message for issue in report.errors]


# -- items and what is written --------------------------------------------------------------


def test_bodies_lines_and_pairs_become_full_lines(tmp_path: Path) -> None:
    items = [
        chat("a"),
        {"custom_id": "mine", "body": chat("b")},
        ("pair", chat("c")),
        {"body": chat("d")},
    ]
    result = build_batch(items, endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    assert result.files == [tmp_path / "q.jsonl"]
    written = read(tmp_path / "q.jsonl")
    assert [line["custom_id"] for line in written] == [
        "request-000001",
        "mine",
        "pair",
        "request-000004",
    ]
    assert all(line["method"] == "POST" and line["url"] == CHAT for line in written)
    assert all(line["body"]["model"] == MODEL for line in written)
    assert list(written[0]) == ["custom_id", "method", "url", "body"]
    assert items[0] == chat("a"), "the caller's body is not changed"


def test_output_is_orjson_utf8_lf_without_bom(tmp_path: Path) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "é 😀"}]}
    build_batch([body], endpoint=CHAT, output=tmp_path / "q.jsonl")
    data = (tmp_path / "q.jsonl").read_bytes()
    expected = {"custom_id": "request-000001", "method": "POST", "url": CHAT, "body": body}
    assert data == orjson.dumps(expected) + b"\n"
    assert b"\r" not in data and not data.startswith(b"\xef\xbb\xbf")


def test_custom_id_callable(tmp_path: Path) -> None:
    result = build_batch(
        [chat("a"), chat("b")],
        endpoint=CHAT,
        model=MODEL,
        output=tmp_path / "q.jsonl",
        custom_id=lambda index, body: f"row-{index}-{body['messages'][0]['content']}",
    )
    assert [line["custom_id"] for line in read(result.files[0])] == ["row-0-a", "row-1-b"]


def test_model_mismatch_is_an_error(tmp_path: Path) -> None:
    items = [{"model": "other", **chat()}]
    with pytest.raises(InvalidRequestError, match="model_mismatch"):
        build_batch(items, endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    first_wins = [{"model": "a", **chat()}, {"model": "b", **chat()}]
    with pytest.raises(InvalidRequestError) as caught:
        build_batch(first_wins, endpoint=CHAT, output=tmp_path / "q.jsonl")
    assert caught.value.index == 1
    assert listing(tmp_path) == []


def test_result_to_dict(tmp_path: Path) -> None:
    result = build_batch([chat()], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    document = result.to_dict()
    assert document["requests"] == 1 and document["rejected"] == 0
    assert document["files"][0]["path"] == str(tmp_path / "q.jsonl")
    assert document["files"][0]["bytes"] == (tmp_path / "q.jsonl").stat().st_size
    assert document["model"] == MODEL and document["endpoint"] == CHAT
    orjson.dumps(document)


def test_progress_is_reported(tmp_path: Path) -> None:
    seen: list[int] = []
    build_batch(
        (chat() for _ in range(2500)),
        endpoint=CHAT,
        model=MODEL,
        output=tmp_path / "q.jsonl",
        progress=seen.append,
    )
    assert seen == [1000, 2000, 2500]


def test_long_custom_id_is_a_warning(tmp_path: Path) -> None:
    result = build_batch(
        [("x" * 70, chat())], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl"
    )
    assert result.requests == 1
    assert [warning.issue.code for warning in result.warnings] == ["long_custom_id"]


# -- invalid requests -------------------------------------------------------------------------


def test_invalid_request_names_index_id_and_issues_and_writes_nothing(tmp_path: Path) -> None:
    items = [chat("ok")] * 3 + [{"messages": [], "temperature": 5}]
    with pytest.raises(InvalidRequestError) as caught:
        build_batch(items, endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    error = caught.value
    assert isinstance(error, InvalidInputError) and isinstance(error, BatchkitError)
    assert error.index == 3 and error.custom_id == "request-000004"
    assert {issue.param for issue in error.issues} == {"body.messages", "body.temperature"}
    assert 'index 3 (custom_id "request-000004")' in str(error)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "item",
    [
        ["not", "a", "request"],
        {"custom_id": 5, "body": chat()},
        {"custom_id": "x", "method": "GET", "body": chat()},
        {"custom_id": "x", "url": "/chat/completions", "body": chat()},
        {"custom_id": "x"},
        {"messages": [{"role": "user", "content": "hi"}], "stream": True},
        {"messages": [{"role": "user", "content": {1, 2}}]},
    ],
    ids=["not-a-dict", "id-type", "method", "url", "no-body", "stream", "not-json"],
)
def test_each_kind_of_bad_item_is_refused(tmp_path: Path, item: Any) -> None:
    with pytest.raises(InvalidRequestError):
        build_batch([chat(), item], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl")
    assert listing(tmp_path) == []


def test_skip_writes_rejects_and_goes_on(tmp_path: Path) -> None:
    items = [chat("a"), {"messages": []}, ("a-dup", chat()), ("a-dup", chat()), chat("b")]
    result = build_batch(
        items, endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl", on_invalid="skip"
    )
    assert result.requests == 3 and result.rejected == 2
    assert result.rejects_file == tmp_path / "q.rejects.jsonl"
    assert listing(tmp_path) == ["q.jsonl", "q.rejects.jsonl"]
    rejects = read(tmp_path / "q.rejects.jsonl")
    assert [row["index"] for row in rejects] == [1, 3]
    assert rejects[0]["errors"][0]["code"] == "invalid_request"
    assert rejects[0]["request"]["custom_id"] == "request-000002"
    assert rejects[1]["errors"][0]["code"] == "duplicate_custom_id"
    assert_each_file_valid(result.files, CHAT, Limits())


def test_all_rejected_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="all 2 requests are invalid"):
        build_batch(
            [{"messages": []}] * 2,
            endpoint=CHAT,
            model=MODEL,
            output=tmp_path / "q.jsonl",
            on_invalid="skip",
        )
    assert listing(tmp_path) == []


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no requests"):
        build_batch([], endpoint=CHAT, output=tmp_path / "q.jsonl")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "/chat/completions"},
        {"output": "q.json"},
        {"on_invalid": "ignore"},
        {"profile": "nope"},
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"endpoint": CHAT, "output": tmp_path / "q.jsonl", **kwargs}
    if not str(arguments["output"]).startswith(str(tmp_path)):
        arguments["output"] = tmp_path / arguments["output"]
    with pytest.raises(UsageError):
        build_batch([chat()], **arguments)


# -- splitting at every limit -----------------------------------------------------------------


def line_size(tmp_path: Path) -> int:
    """The bytes of one line of :func:`uniform` (ids of one width: lines of one size)."""
    probe = build_batch(uniform(1), endpoint=CHAT, model=MODEL, output=tmp_path / "probe.jsonl")
    (tmp_path / "probe.jsonl").unlink()
    return probe.bytes


def uniform(count: int) -> list[dict[str, Any]]:
    return [chat("same text") for _ in range(count)]


def filled_to(most: int) -> int:
    """The limit whose fill (the most the split puts in a file: under 90%) is ``most``."""
    limit = most
    while fill(limit, Limits.near_limit_ratio) < most:
        limit += 1
    assert fill(limit, Limits.near_limit_ratio) == most
    return limit


def assert_each_file_passes_strict(paths: list[Path], endpoint: str, limits: Limits) -> None:
    for path in paths:
        report = validate_file(path, endpoint=endpoint, limits=limits)
        assert report.passed(strict=True), [issue.message for issue in report.warnings]


@pytest.mark.parametrize(("count", "files"), [(3, 1), (4, 2), (6, 2), (7, 3)])
def test_split_at_max_requests(tmp_path: Path, count: int, files: int) -> None:
    limits = Limits(max_requests=filled_to(3))
    result = build_batch(
        uniform(count), endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl", limits=limits
    )
    assert len(result.files) == files
    expected = ["q.jsonl"] if files == 1 else [f"q-{n:03d}.jsonl" for n in range(1, files + 1)]
    assert listing(tmp_path) == expected
    assert result.counts == [3] * (files - 1) + [count - 3 * (files - 1)]
    assert_each_file_passes_strict(result.files, CHAT, limits)


@pytest.mark.parametrize(("spare", "counts"), [(0, [3]), (-1, [2, 1])])
def test_split_at_max_bytes_newline_included(tmp_path: Path, spare: int, counts: list[int]) -> None:
    size = line_size(tmp_path)
    limits = Limits(max_bytes=filled_to(3 * size + spare))
    result = build_batch(
        uniform(3), endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl", limits=limits
    )
    assert result.counts == counts
    assert all(path.stat().st_size <= 3 * size + spare for path in result.files)
    assert sum(path.stat().st_size for path in result.files) == 3 * size
    assert_each_file_passes_strict(result.files, CHAT, limits)


@pytest.mark.parametrize(("most", "counts"), [(6, [3]), (5, [2, 1])])
def test_split_at_max_embedding_inputs(tmp_path: Path, most: int, counts: list[int]) -> None:
    items = [{"model": "e", "input": ["a", "b"]} for _ in range(3)]
    limits = Limits(max_embedding_inputs=filled_to(most))
    result = build_batch(items, endpoint=EMBEDDINGS, output=tmp_path / "e.jsonl", limits=limits)
    assert result.counts == counts
    assert [output.embedding_inputs for output in result.outputs] == [2 * n for n in counts]
    assert_each_file_passes_strict(result.files, EMBEDDINGS, limits)


def test_embeddings_request_larger_than_a_file_is_an_error(tmp_path: Path) -> None:
    items = [{"model": "e", "input": "a"}, {"model": "e", "input": ["a", "b", "c"]}]
    with pytest.raises(InvalidRequestError, match="too_many_embedding_inputs") as caught:
        build_batch(
            items,
            endpoint=EMBEDDINGS,
            output=tmp_path / "e.jsonl",
            limits=Limits(max_embedding_inputs=2),
        )
    assert caught.value.index == 1
    assert listing(tmp_path) == []


def test_request_larger_than_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="file_too_large"):
        build_batch(
            [chat("x" * 500)],
            endpoint=CHAT,
            model=MODEL,
            output=tmp_path / "q.jsonl",
            limits=Limits(max_bytes=100),
        )


def test_custom_ids_unique_across_files(tmp_path: Path) -> None:
    items = [("a", chat()), ("b", chat()), ("c", chat()), ("a", chat())]
    with pytest.raises(InvalidRequestError, match="duplicate_custom_id") as caught:
        build_batch(
            items,
            endpoint=CHAT,
            model=MODEL,
            output=tmp_path / "q.jsonl",
            limits=Limits(max_requests=2),
        )
    assert caught.value.index == 3 and caught.value.custom_id == "a"
    assert listing(tmp_path) == []


texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
bodies = st.builds(
    lambda content, temperature, role: {
        "messages": [{"role": role, "content": content}],
        **({} if temperature is None else {"temperature": temperature}),
    },
    texts,
    st.one_of(st.none(), st.floats(min_value=0, max_value=2)),
    st.sampled_from(["user", "system", "developer"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(bodies, min_size=1, max_size=25),
    max_requests=st.integers(1, 6),
    max_bytes=st.integers(400, 1200),
)
def test_concatenated_files_equal_the_input(
    tmp_path_factory: pytest.TempPathFactory,
    items: list[dict[str, Any]],
    max_requests: int,
    max_bytes: int,
) -> None:
    directory = tmp_path_factory.mktemp("property")
    limits = Limits(max_requests=max_requests, max_bytes=max_bytes)
    result = build_batch(
        items, endpoint=CHAT, model=MODEL, output=directory / "p.jsonl", limits=limits
    )
    written = [line for path in result.files for line in read(path)]
    assert [line["body"] for line in written] == [{"model": MODEL, **item} for item in items]
    assert [line["custom_id"] for line in written] == [
        f"request-{n:06d}" for n in range(1, len(items) + 1)
    ]
    assert result.requests == len(items)
    assert_each_file_valid(result.files, CHAT, limits)


# -- atomicity ------------------------------------------------------------------------------------


def failing(count: int, error: BaseException) -> Iterator[dict[str, Any]]:
    for _ in range(count):
        yield chat()
    raise error


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_midway_leaves_nothing(tmp_path: Path, error: BaseException) -> None:
    with pytest.raises(type(error)):
        build_batch(
            failing(7, error),
            endpoint=CHAT,
            model=MODEL,
            output=tmp_path / "q.jsonl",
            limits=Limits(max_requests=3),
        )
    assert listing(tmp_path) == []


def test_existing_outputs_are_kept_unless_overwrite(tmp_path: Path) -> None:
    for name in ("q.jsonl", "q-001.jsonl", "q.rejects.jsonl"):
        directory = tmp_path / name.replace(".", "_")
        directory.mkdir()
        (directory / name).write_text("precious")
        with pytest.raises(UsageError, match="already exists"):
            build_batch([chat()], endpoint=CHAT, model=MODEL, output=directory / "q.jsonl")
        assert listing(directory) == [name]
        assert (directory / name).read_text() == "precious"


def test_unrelated_numbered_file_is_not_an_output(tmp_path: Path) -> None:
    (tmp_path / "q-2024.jsonl").write_text("mine")
    build_batch([chat()], endpoint=CHAT, model=MODEL, output=tmp_path / "q.jsonl", overwrite=True)
    assert listing(tmp_path) == ["q-2024.jsonl", "q.jsonl"]


def test_overwrite_removes_stale_outputs(tmp_path: Path) -> None:
    output = tmp_path / "q.jsonl"
    limits = Limits(max_requests=filled_to(2))
    build_batch(uniform(7), endpoint=CHAT, model=MODEL, output=output, limits=limits)
    build_batch(
        [{"messages": []}, *uniform(1)],
        endpoint=CHAT,
        model=MODEL,
        output=output,
        limits=limits,
        overwrite=True,
        on_invalid="skip",
    )
    assert listing(tmp_path) == ["q.jsonl", "q.rejects.jsonl"]
    result = build_batch(
        uniform(3), endpoint=CHAT, model=MODEL, output=output, limits=limits, overwrite=True
    )
    assert listing(tmp_path) == ["q-001.jsonl", "q-002.jsonl"]
    assert result.counts == [2, 1]


class _FullDisk(io.RawIOBase):
    """A file on a disk with ``room[0]`` bytes left (shared by all files), then ENOSPC."""

    def __init__(self, real: Any, room: list[int]) -> None:
        self.real = real
        self.room = room

    def write(self, data: Any) -> int:
        if len(data) > self.room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room[0] -= len(data)
        return int(self.real.write(data))

    def close(self) -> None:
        self.real.close()
        super().close()


def test_full_disk_leaves_nothing_and_keeps_old_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "q.jsonl").write_text("old")
    real_open = build_module._open_temp
    room = [1000]  # a few files' worth: the disk fills up in the third file
    monkeypatch.setattr(build_module, "_WRITE_BUFFER", 0)
    monkeypatch.setattr(build_module, "_open_temp", lambda path: _FullDisk(real_open(path), room))
    with pytest.raises(BatchkitError, match="No space left on device") as caught:
        build_batch(
            uniform(50),
            endpoint=CHAT,
            model=MODEL,
            output=tmp_path / "q.jsonl",
            overwrite=True,
            limits=Limits(max_requests=3),
        )
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert listing(tmp_path) == ["q.jsonl"]
    assert (tmp_path / "q.jsonl").read_text() == "old"


def _old_outputs(directory: Path) -> dict[str, bytes]:
    """A finished earlier build in ``directory``: three parts and a rejects file."""
    output = directory / "q.jsonl"
    limits = Limits(max_requests=filled_to(2))
    build_batch(
        [{"messages": []}, *uniform(5)],
        endpoint=CHAT,
        model=MODEL,
        output=output,
        limits=limits,
        on_invalid="skip",
    )
    return {path.name: path.read_bytes() for path in directory.iterdir()}


#: The renames of the rebuild below: its two parts, then its rejects file.
_COMMIT_RENAMES = 3


@pytest.mark.parametrize("failing_rename", range(1, _COMMIT_RENAMES + 1))
def test_a_rename_that_fails_halfway_through_the_commit_leaves_all_old_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_rename: int
) -> None:
    """Some parts renamed, some not, would be a batch that mixes two builds: it is all old."""
    before = _old_outputs(tmp_path)
    assert sorted(before) == ["q-001.jsonl", "q-002.jsonl", "q-003.jsonl", "q.rejects.jsonl"]
    real_replace = os.replace
    renames: list[str] = []

    def replace(source: Any, target: Any) -> None:
        if Path(source).name.endswith(".tmp"):  # a new output taking its final name
            renames.append(Path(target).name)
            if len(renames) == failing_rename:
                raise OSError(errno.EIO, "Input/output error", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(BatchkitError, match="Input/output error"):
        build_batch(
            [{"messages": "new"}, *(chat("new") for _ in range(3))],
            endpoint=CHAT,
            model=MODEL,
            output=tmp_path / "q.jsonl",
            limits=Limits(max_requests=filled_to(2)),
            overwrite=True,
            on_invalid="skip",
        )
    assert renames[-1] == ["q-001.jsonl", "q-002.jsonl", "q.rejects.jsonl"][failing_rename - 1]
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


# -- the id set -----------------------------------------------------------------------------------


def test_seen_ids_grow_and_find_duplicates() -> None:
    seen = _SeenIds()
    ids = [f"id-{n}" for n in range(5000)]
    assert all(seen.add(custom_id) for custom_id in ids)
    assert not any(seen.add(custom_id) for custom_id in ids)
    assert seen.add("new")
