"""The builder checks waiting requests together (build_parts.Pending): files, rejects, warnings and
errors come out exactly as when each request is checked on its own."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchkit import build as build_module
from batchkit.build import InvalidRequestError, build_batch
from batchkit.errors import InvalidInputError
from batchkit.limits import Limits
from batchkit.validate import Validator
from tests.helpers import CHAT, MODEL

#: Each kind of item: valid ones and ones the build's rules, the validator's errors or its
#: warnings catch, so that a waiting block holds every kind of trouble somewhere.
KINDS: dict[str, Any] = {
    "valid": lambda n: {"messages": [{"role": "user", "content": f"q {n}"}]},
    "long": lambda n: {"messages": [{"role": "user", "content": "x" * (40 + n % 90)}]},
    "bad temperature": lambda n: {"messages": [{"role": "user", "content": "q"}], "temperature": 9},
    "typo": lambda n: {"messages": [{"role": "user", "content": "q"}], "max_token": 5},
    "zero cap": lambda n: {"messages": [{"role": "user", "content": "q"}], "max_tokens": 0},
    "stream": lambda n: {"messages": [{"role": "user", "content": "q"}], "stream": True},
    "other model": lambda n: {"model": "other", "messages": [{"role": "user", "content": "q"}]},
    "repeated id": lambda n: ("same-id", {"messages": [{"role": "user", "content": "q"}]}),
    "extra key": lambda n: {"custom_id": f"x-{n}", "body": {"messages": []}, "extra": 1},
    "not a dict": lambda n: 42,
    "separator": lambda n: {"messages": [{"role": "user", "content": "a\u2028b"}]},
}
WEIGHTS = ["valid"] * 12 + ["long"] * 4 + sorted(KINDS)


def outcome(items: Iterable[Any], limits: Limits, on_invalid: str) -> tuple[Any, ...]:
    """Everything a build shows: its result, every file's bytes, or the error it raised."""
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "out.jsonl"
        try:
            result = build_batch(
                items,
                endpoint=CHAT,
                output=output,
                model=MODEL,
                limits=limits,
                on_invalid=on_invalid,  # type: ignore[arg-type]
            )
        except InvalidRequestError as error:
            return ("raised", str(error), error.index)
        except InvalidInputError as error:  # every request rejected
            return ("raised", str(error))
        shown = result.to_dict()
        for row in shown["files"]:
            row["path"] = Path(row["path"]).name
        shown["rejects_file"] = shown["rejects_file"] and Path(shown["rejects_file"]).name
        files = sorted(Path(directory).iterdir())
        return (shown, [(path.name, path.read_bytes()) for path in files])


def one_at_a_time(items: list[Any], limits: Limits, on_invalid: str) -> tuple[Any, ...]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Validator, "check_records", lambda self, records, lines: False)
        patch.setattr(Validator, "check_bodies", lambda *args, **options: False)
        return outcome(items, limits, on_invalid)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(WEIGHTS), min_size=1, max_size=400),
    st.sampled_from([None, 7, 50, 300]),
    st.sampled_from([None, 3_000, 20_000]),
    st.sampled_from(["skip", "raise"]),
    st.sampled_from([1, 5, 128]),
    st.sampled_from([64, 14, 13]),  # "request-000001" is 14 characters
)
def test_waiting_requests_build_what_one_at_a_time_builds(
    kinds: list[str],
    requests: int | None,
    nbytes: int | None,
    on_invalid: str,
    pending: int,
    long_id: int,
) -> None:
    items = [KINDS[kind](n) for n, kind in enumerate(kinds)]
    limits = Limits(
        max_requests=requests or Limits().max_requests,
        max_bytes=nbytes or Limits().max_bytes,
        long_custom_id=long_id,
    )
    expected = one_at_a_time(items, limits, on_invalid)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "PENDING", pending)
        patch.setattr(build_module, "CHUNK", pending)
        assert outcome(items, limits, on_invalid) == expected
        assert outcome(iter(items), limits, on_invalid) == expected  # a generator: no lookahead


#: Items that are all bodies (no ids of their own), mostly valid: the builder's chunks of plain
#: bodies (build_chunks.plain_chunk, Validator.check_bodies) are taken or refused as a whole.
BODY_KINDS = [
    kind for kind in KINDS if kind not in ("repeated id", "extra key", "not a dict", "valid")
]
BODY_WEIGHTS = ["valid"] * 60 + BODY_KINDS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=1, max_value=600),
    st.randoms(use_true_random=False),
    st.sampled_from([None, 40, 300]),
    st.sampled_from([5, 32]),
    st.sampled_from([64, 14, 13]),  # "request-000001" is 14 characters
)
def test_chunks_of_plain_bodies_build_what_one_at_a_time_builds(
    count: int, chance: random.Random, requests: int | None, chunk: int, long_id: int
) -> None:
    # (long lists drawn item by item would be rare: hypothesis keeps most lists short)
    items = [KINDS[chance.choice(BODY_WEIGHTS)](n) for n in range(count)]
    limits = Limits(max_requests=requests or Limits().max_requests, long_custom_id=long_id)
    expected = one_at_a_time(items, limits, "skip")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "PENDING", chunk)
        patch.setattr(build_module, "CHUNK", chunk)
        assert outcome(items, limits, "skip") == expected


def test_most_chunks_of_plain_bodies_are_taken_whole(tmp_path: Path) -> None:
    """The property above is about the chunk path: most of its chunks must take it."""
    taken: list[int] = []
    real = Validator.check_bodies

    def bodies(self: Validator, ids: list[str], bodies: list[Any], *args: Any, **kw: Any) -> bool:
        passed = real(self, ids, bodies, *args, **kw)
        taken.append(passed)
        return passed

    items = [KINDS[BODY_WEIGHTS[n * 7 % len(BODY_WEIGHTS)]](n) for n in range(600)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "PENDING", 5)
        patch.setattr(build_module, "CHUNK", 5)
        patch.setattr(Validator, "check_bodies", bodies)
        build_batch(
            items, endpoint=CHAT, output=tmp_path / "o.jsonl", model=MODEL, on_invalid="skip"
        )
    assert sum(taken) >= 40, (sum(taken), len(taken))


@pytest.mark.parametrize("bad", [0, 1, 5, 127, 128, 300])
def test_a_bad_request_fails_before_the_next_item_is_read(tmp_path: Path, bad: int) -> None:
    """A reader's position names the failing item (the CLI's "in.csv:3"): no reading ahead."""
    read: list[int] = []

    def items() -> Any:
        for n in range(400):
            read.append(n)
            yield KINDS["bad temperature" if n == bad else "valid"](n)

    with pytest.raises(InvalidRequestError) as raised:
        build_batch(items(), endpoint=CHAT, output=tmp_path / "o.jsonl", model=MODEL)
    assert raised.value.index == bad
    assert read[-1] == bad


def test_a_clean_build_is_checked_in_blocks(tmp_path: Path) -> None:
    calls: list[int] = []
    real_records, real_bodies = Validator.check_records, Validator.check_bodies

    def records(self: Validator, records: list[Any], lines: list[bytes]) -> bool:
        passed = real_records(self, records, lines)
        calls.append(len(records) if passed else 0)
        return passed

    def bodies(self: Validator, ids: list[str], bodies: list[Any], *args: Any, **kw: Any) -> bool:
        passed = real_bodies(self, ids, bodies, *args, **kw)
        calls.append(len(bodies) if passed else 0)
        return passed

    items = [KINDS["valid"](n) for n in range(1000)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Validator, "check_records", records)
        patch.setattr(Validator, "check_bodies", bodies)
        result = build_batch(items, endpoint=CHAT, output=tmp_path / "o.jsonl", model=MODEL)
    assert result.outputs[0].requests == 1000
    assert sum(calls) >= 1000 - build_module.PENDING  # all but the first block at most


@pytest.mark.parametrize("count", [1, 999, 1000, 1001, 2500, 3000])
def test_progress_is_the_same_in_chunks_as_one_at_a_time(tmp_path: Path, count: int) -> None:
    def built(items: Iterable[Any]) -> list[int]:
        seen: list[int] = []
        build_batch(
            items,
            endpoint=CHAT,
            output=tmp_path / "p.jsonl",
            model=MODEL,
            overwrite=True,
            progress=seen.append,
        )
        return seen

    items = [KINDS["valid"](n) for n in range(count)]
    expected = [*range(1000, count + 1, 1000), count]
    assert built(items) == built(iter(items)) == expected
