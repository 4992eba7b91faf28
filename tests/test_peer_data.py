"""Real batch files written by other projects get the verdict their sources record.

The expectations come from ../shared/peer-data/*/SOURCES.md and llama-stack/EXPECTED.md (the
errors a real OpenAI server gave).  Where the server stops at the first problem of a line and
batchkit reports every problem, batchkit's list is a superset; each extra is named here.
"""

from __future__ import annotations

import pytest

from batchkit import validate_file
from tests.helpers import CHAT, PEER_DATA

# file -> (endpoint given to the batch, errors as (line, code, param)); None = valid
EXPECTED: dict[str, tuple[str | None, list[tuple[int | None, str, str | None]] | None]] = {
    # llama-stack: EXPECTED.md, the server's own answers
    "llama-stack/missing_required_fields.jsonl": (
        CHAT,
        [
            (1, "missing_required_parameter", "custom_id"),
            (2, "missing_required_parameter", "method"),
            (3, "missing_required_parameter", "url"),
            (4, "missing_required_parameter", "body"),
        ],
    ),
    "llama-stack/streaming_not_supported.jsonl": (
        CHAT,
        [(1, "streaming_unsupported", "body.stream")],
    ),
    "llama-stack/mixed_streaming_requests.jsonl": (
        CHAT,
        [(2, "streaming_unsupported", "body.stream")],
    ),
    "llama-stack/endpoint_mismatch.jsonl": (CHAT, [(1, "invalid_url", "url")]),
    "llama-stack/missing_body_fields.jsonl": (
        CHAT,
        [(1, "invalid_request", "body.model"), (2, "invalid_request", "body.messages")],
    ),
    # EXPECTED.md records line 2 only; line 1's body ({"model": "test"}) also lacks messages,
    # which the server would report once line 2 parsed.  batchkit reports both.
    "llama-stack/malformed_jsonl.jsonl": (
        CHAT,
        [(1, "invalid_request", "body.messages"), (2, "invalid_json_line", None)],
    ),
    # model_not_found is known only to the server: the file itself is valid.
    "llama-stack/invalid_model.jsonl": (CHAT, None),
    "llama-stack/valid_single_chat.jsonl": (CHAT, None),
    "llama-stack/upload_empty.jsonl": (None, [(None, "empty_file", None)]),
    "llama-stack/upload_malformed.jsonl": (None, [(1, "invalid_json_line", None)]),
    # litellm: SOURCES.md notes
    "litellm/batch_small.jsonl": (
        None,
        [(line, "duplicate_custom_id", "custom_id") for line in range(4, 13)],
    ),
    "litellm/batch_job_results_furniture.jsonl": (None, None),
    "litellm/openai_batch_completions_router.jsonl": (
        None,
        [(line, "invalid_url", "url") for line in (1, 2, 3)],
    ),
    "litellm/openai_endpoints_input.jsonl": (None, None),
    "litellm/openai_endpoints_input_azure.jsonl": (None, [(1, "invalid_url", "url")]),
    "litellm/test_batch_rate_limiting_integration.jsonl": (None, None),
    "litellm/bedrock_input_batch_embeddings.jsonl": (None, None),
    # openai-cookbook: a /v1/responses batch, valid for OpenAI (its SOURCES.md says so)
    "openai-cookbook/nightly_support_qa_batch.jsonl": (None, None),
    # vllm: L3 another model, L4 /bad_url, L5 stream as the string "True"
    "vllm/openai_example_batch.jsonl": (None, None),
    "vllm/run_batch_INPUT_BATCH.jsonl": (
        None,
        [
            (3, "model_mismatch", "body.model"),
            (4, "invalid_url", "url"),
            (5, "invalid_request", "body.stream"),
        ],
    ),
    "vllm/run_batch_INVALID_INPUT_BATCH.jsonl": (
        None,
        [(1, "missing_required_parameter", "custom_id")],
    ),
    "vllm/run_batch_INPUT_EMBEDDING_BATCH.jsonl": (None, [(4, "model_mismatch", "body.model")]),
}

WARNINGS = {
    "litellm/batch_small.jsonl": [(13, "blank_line"), (14, "blank_line")],
    "litellm/batch_job_results_furniture.jsonl": [(3, "blank_line")],
    "litellm/test_batch_rate_limiting_integration.jsonl": [(4, "blank_line")],
    "litellm/openai_endpoints_input.jsonl": [(1, "long_custom_id")],
    "litellm/openai_endpoints_input_azure.jsonl": [(1, "long_custom_id")],
    "vllm/run_batch_INVALID_INPUT_BATCH.jsonl": [(1, "unknown_parameter")],
}


def test_every_peer_file_has_an_expectation() -> None:
    on_disk = {str(p.relative_to(PEER_DATA)) for p in PEER_DATA.glob("*/*.jsonl")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_peer_file_verdict(name: str) -> None:
    endpoint, expected = EXPECTED[name]
    report = validate_file(PEER_DATA / name, endpoint=endpoint)
    found = [(i.line, i.code, i.param) for i in report.errors]
    assert found == (expected or [])
    assert report.valid is (expected is None)
    assert [(i.line, i.code) for i in report.warnings] == WARNINGS.get(name, [])


def test_endpoint_mismatch_without_the_batch_endpoint_checks_the_body_as_embeddings() -> None:
    # With no --endpoint the first line's url (/v1/embeddings) is the batch endpoint, so the
    # chat body breaks the embeddings schema instead.
    report = validate_file(PEER_DATA / "llama-stack/endpoint_mismatch.jsonl")
    assert {(i.code, i.param) for i in report.errors} == {
        ("invalid_request", "body.input"),
        ("invalid_request", "body.messages"),
    }
