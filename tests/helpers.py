"""Small builders shared by the tests: valid requests and files made from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
#: The valid samples, one file per endpoint that has one (the README's first command's list).
SAMPLE_FILES = (
    "chat.jsonl",
    "embeddings.jsonl",
    "completions.jsonl",
    "responses.jsonl",
    "moderations.jsonl",
    "images.jsonl",
)
PEER_DATA = REPO.parent / "shared" / "peer-data"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
COMPLETIONS = "/v1/completions"
MODEL = "openai/gpt-4o-mini"
#: The fields of one file in ``validate --format json`` (the README's stable document).
REPORT_KEYS = {
    "path",
    "valid",
    "endpoint",
    "model",
    "requests",
    "bytes",
    "embedding_inputs",
    "errors",
    "warnings",
    "errors_total",
    "warnings_total",
}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], **extra}


def request(custom_id: Any = "req-1", body: Any = None, url: Any = CHAT, **extra: Any) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": chat_body() if body is None else body,
        **extra,
    }


def jsonl(*records: Any) -> bytes:
    """Records as JSONL; ``bytes`` items are written as they are (with a newline added)."""
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    return b"".join(line + b"\n" for line in lines)
