"""The shipped request-body schemas: well formed, self-contained, and read the same way by both
validation engines (``jsonschema`` explains errors, ``jsonschema_rs`` is the fast path).

The corpus of bodies is the one of ``test_schema_differential.py``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from jsonschema.exceptions import best_match

import batchkit.endpoints

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
#: Every endpoint batchkit knows: schema file stem -> the spec's component it is written from.
ENDPOINTS = {
    endpoint.schema.removesuffix(".json"): endpoint.spec_component
    for endpoint in batchkit.endpoints.ENDPOINTS.values()
}


def _load_corpus_module() -> Any:
    """Load the differential test module by path: works whatever pytest's import mode."""
    name = "_batchkit_schema_corpus"
    if name not in sys.modules:
        path = Path(__file__).with_name("test_schema_differential.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_corpus = _load_corpus_module()
CORPUS = _corpus.CORPUS
chat = _corpus.chat
user = _corpus.user


def load(endpoint: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{endpoint}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def engines() -> dict[str, tuple[Any, Any]]:
    return {
        endpoint: (
            jsonschema.Draft202012Validator(load(endpoint)),
            jsonschema_rs.validator_for(load(endpoint)),
        )
        for endpoint in ENDPOINTS
    }


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_schema_is_valid_against_its_metaschema(endpoint: str) -> None:
    schema = load(endpoint)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.validators.validator_for(schema).check_schema(schema)
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_schema_header(endpoint: str) -> None:
    schema = load(endpoint)
    assert schema["$id"] == f"urn:batchkit:schema:{endpoint}"
    assert schema["title"]
    assert ENDPOINTS[endpoint] in schema["description"]
    assert "openai-openapi.yaml" in schema["description"]
    assert schema["type"] == "object"
    # What the body requires is a property the schema describes.
    assert set(schema.get("required", [])) <= set(schema["properties"])


def test_every_schema_file_is_an_endpoint() -> None:
    assert {path.stem for path in SCHEMA_DIR.glob("*.json")} == set(ENDPOINTS)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_schema_is_self_contained(endpoint: str) -> None:
    """Local refs only (no network at validation time) and no reliance on `format`."""
    schema = load(endpoint)
    for node in _walk(schema):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith("#/$defs/"), ref
            assert ref.removeprefix("#/$defs/") in schema["$defs"], ref
        # `format` only ever appears as a property name (audio.format...), not as a keyword.
        assert not isinstance(node.get("format"), str), node
        assert "$dynamicRef" not in node


def test_unknown_keys_policy() -> None:
    assert load("embeddings")["additionalProperties"] is False
    assert "user" in load("embeddings")["properties"]
    assert "additionalProperties" not in load("chat_completions")
    assert "additionalProperties" not in load("completions")


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_jsonschema_rs_picks_draft_2020_12(endpoint: str) -> None:
    assert type(jsonschema_rs.validator_for(load(endpoint))) is jsonschema_rs.Draft202012Validator


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_engines_agree(endpoint: str, engines: dict[str, tuple[Any, Any]]) -> None:
    """On every body of the endpoint's corpus: the same verdict, and errors at the same places.

    One test per endpoint, not per body: it names every body on which the engines differ.
    jsonschema_rs reports an object key that looks like a number (logit_bias {"50256": ...})
    as an int, so the path parts are compared as text.
    """
    slow, fast = engines[endpoint]
    cases = [case for case in CORPUS if case.endpoint == endpoint]
    differ = []
    for case in cases:
        slow_paths = {tuple(map(str, e.absolute_path)) for e in slow.iter_errors(case.body)}
        fast_paths = {tuple(map(str, e.instance_path)) for e in fast.iter_errors(case.body)}
        if slow.is_valid(case.body) != fast.is_valid(case.body) or slow_paths != fast_paths:
            differ.append(case.id)
    assert cases and differ == []


# What the validator's message is built from: jsonschema's best match, its path and keyword.
PRECISE_ERRORS = [
    ("chat_completions", {"messages": [user()]}, (), "required"),
    (
        "chat_completions",
        chat({"role": "narrator", "content": "x"}),
        ("messages", 0, "role"),
        "enum",
    ),
    ("chat_completions", chat({"content": "x"}), ("messages", 0), "required"),
    ("chat_completions", chat({"role": "user"}), ("messages", 0), "required"),
    ("chat_completions", chat({"role": "tool", "content": "x"}), ("messages", 0), "required"),
    (
        "chat_completions",
        chat({"role": "user", "content": [{"type": "video"}]}),
        ("messages", 0, "content", 0, "type"),
        "enum",
    ),
    (
        "chat_completions",
        chat({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        ("messages", 0, "content", 0, "type"),
        "enum",
    ),
    (
        "chat_completions",
        chat({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}),
        ("messages", 0, "content", 0, "image_url"),
        "required",
    ),
    ("chat_completions", chat(temperature=3), ("temperature",), "maximum"),
    ("chat_completions", chat(stop=["a"] * 5), ("stop",), "maxItems"),
    ("chat_completions", chat(logit_bias={"1": 101}), ("logit_bias", "1"), "maximum"),
    ("chat_completions", chat(tools=[{"type": "function"}]), ("tools", 0), "required"),
    ("chat_completions", chat(tool_choice="sometimes"), ("tool_choice",), "enum"),
    ("embeddings", {"model": "m", "input": ""}, ("input",), "minLength"),
    ("embeddings", {"model": "m", "input": ["a", 1]}, ("input", 1), "type"),
    ("embeddings", {"model": "m", "input": ["x"] * 2049}, ("input",), "maxItems"),
    ("embeddings", {"model": "m", "input": "x", "temperature": 1}, (), "additionalProperties"),
    ("completions", {"model": "m", "prompt": "x", "best_of": 21}, ("best_of",), "maximum"),
    ("completions", {"model": "m", "prompt": [[1], [1, "a"]]}, ("prompt", 1, 1), "type"),
    ("responses", {"model": "m"}, (), "required"),
    ("responses", {"model": "m", "input": "x", "messages": []}, ("messages",), "not"),
    (
        "responses",
        {"model": "m", "input": "x", "text": {"format": {"type": "json"}}},
        ("text", "format", "type"),
        "enum",
    ),
    (
        "responses",
        {"model": "m", "input": [{"role": "tool", "content": "x"}]},
        ("input", 0, "role"),
        "enum",
    ),
    (
        "responses",
        {"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}]},
        ("tools", 0),
        "required",
    ),
    ("moderations", {"input": ["a", {"type": "text", "text": "b"}]}, ("input", 1), "type"),
    ("image_edits", {"prompt": "p", "images": [{}]}, ("images", 0), "minProperties"),
    ("videos", {"prompt": "p", "seconds": 4}, ("seconds",), "enum"),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "path", "keyword"),
    PRECISE_ERRORS,
    ids=[f"{e}:{'.'.join(map(str, p)) or '<body>'}:{k}" for e, _, p, k in PRECISE_ERRORS],
)
def test_errors_land_precisely(
    endpoint: str, body: Any, path: tuple[Any, ...], keyword: str, engines: dict[str, Any]
) -> None:
    """Roles and part types are checked by an enum, and their rules chosen by if/then, so the
    best match points at the offending field, not at a oneOf over the whole message."""
    error = best_match(engines[endpoint][0].iter_errors(body))
    assert error is not None
    assert (tuple(error.absolute_path), error.validator) == (path, keyword), error.message
