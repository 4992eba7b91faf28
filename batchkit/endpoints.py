"""The batch endpoints batchkit knows: one entry per endpoint.

An entry says which JSON Schema its request bodies follow and how its requests count towards
the file's embedding-input limit.  A new endpoint is a new entry and a new schema file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchkit.errors import UsageError


def count_embedding_inputs(body: dict[str, Any]) -> int:
    """How many inputs one embeddings request holds (CONTRACT.md section 1).

    A string or a single token array counts 1; an array of strings or of token arrays counts
    its length.  Anything else counts 0: the schema check reports it.
    """
    value = body.get("input")
    if isinstance(value, str):
        return 1
    if isinstance(value, list):
        # The schema takes an array's kind from its first item, so a token array is one input.
        if value and type(value[0]) is int:
            return 1
        return len(value)
    return 0


def count_all_embedding_inputs(bodies: list[dict[str, Any]]) -> int:
    """:func:`count_embedding_inputs` summed over ``bodies`` whose ``input`` the schema
    accepted (a string, or a non-empty array), in a few calls instead of one per body."""
    values = [body["input"] for body in bodies]
    counted = [value for value in values if type(value) is list and type(value[0]) is not int]
    return len(values) - len(counted) + sum(map(len, counted))


def _no_inputs(body: dict[str, Any]) -> int:
    return 0


def _no_inputs_of(bodies: list[dict[str, Any]]) -> int:
    return 0


@dataclass(frozen=True)
class Endpoint:
    url: str
    #: File name under ``schemas/``.
    schema: str
    #: The official spec's component schema this one is written from.
    spec_component: str
    count_inputs: Callable[[dict[str, Any]], int] = _no_inputs
    #: ``count_inputs`` summed over bodies its schema accepted, in a few calls.
    count_all_inputs: Callable[[list[dict[str, Any]]], int] = _no_inputs_of

    @property
    def counts_inputs(self) -> bool:
        return self.count_inputs is not _no_inputs


ENDPOINTS: dict[str, Endpoint] = {
    endpoint.url: endpoint
    for endpoint in (
        Endpoint("/v1/chat/completions", "chat_completions.json", "CreateChatCompletionRequest"),
        Endpoint(
            "/v1/embeddings",
            "embeddings.json",
            "CreateEmbeddingRequest",
            count_inputs=count_embedding_inputs,
            count_all_inputs=count_all_embedding_inputs,
        ),
        Endpoint("/v1/completions", "completions.json", "CreateCompletionRequest"),
        Endpoint("/v1/responses", "responses.json", "CreateResponse"),
        Endpoint("/v1/moderations", "moderations.json", "CreateModerationRequest"),
        Endpoint("/v1/images/generations", "images.json", "CreateImageRequest"),
        # /v1/images/edits and /v1/videos take multipart/form-data or JSON: a batch line is
        # JSON, so their schemas follow the JSON form (images by URL or file id, no uploads).
        Endpoint("/v1/images/edits", "image_edits.json", "EditImageBodyJsonParam"),
        Endpoint("/v1/videos", "videos.json", "CreateVideoJsonBody"),
    )
}


#: How alike a typo must be to a known url to be suggested (difflib's ratio): close enough for
#: ``/v1/chat/completion`` or ``/v1/response``, not for ``/v1/messages`` (Anthropic's).
_TYPO_CUTOFF = 0.85


def suggest_endpoint(url: str) -> str | None:
    """The known endpoint a wrong url most likely meant (``/chat/completions`` -> ``/v1/...``)."""
    stripped = url.strip().rstrip("/")
    for candidate in (stripped, "/v1" + stripped, "/v1/" + stripped.lstrip("/")):
        if candidate in ENDPOINTS:
            return candidate
    for known in ENDPOINTS:
        if stripped.endswith(known.removeprefix("/v1")) and stripped:
            return known
    close = difflib.get_close_matches(stripped, ENDPOINTS, n=1, cutoff=_TYPO_CUTOFF)
    return close[0] if close else None


def missing_v1(url: str, endpoint: str) -> bool:
    """``url`` is ``endpoint`` without its ``/v1`` prefix: the most common mistake of all."""
    return url.strip().rstrip("/").lstrip("/") == endpoint.removeprefix("/v1/")


def get_endpoint(url: str) -> Endpoint | None:
    return ENDPOINTS.get(url)


def named_endpoint(url: Any) -> Endpoint | None:
    """The endpoint a line's url names, or plainly means (a missing ``/v1``, a typo)."""
    if not isinstance(url, str):
        return None
    return ENDPOINTS.get(url) or get_endpoint(suggest_endpoint(url) or "")


def require_endpoint(url: str) -> Endpoint:
    """The endpoint ``url`` names; an unknown one is a UsageError that suggests the right one."""
    endpoint = ENDPOINTS.get(url)
    if endpoint is None:
        hint = suggest_endpoint(url)
        extra = f" (did you mean {hint}?)" if hint else ""
        raise UsageError(f"unknown endpoint {url!r}{extra}: choose one of {', '.join(ENDPOINTS)}")
    return endpoint


def wrong_url_message(url: str, expected: str | None, endpoint_line: int | None) -> str:
    """What to say of a line whose ``url`` is not the batch's endpoint ``expected`` (``None``
    while no line has named one), which line ``endpoint_line`` (or ``--endpoint``) set."""
    from batchkit.schemas import show  # here: importing schemas loads the schema engines

    hint = suggest_endpoint(url)
    if url in ENDPOINTS:
        source = (
            "--endpoint"
            if endpoint_line is None
            else f"line {endpoint_line}, the first line that names one"
        )
        return (
            f'url is "{url}" but the batch endpoint is "{expected}" (from {source}); '
            "every line of a batch must use the batch's endpoint"
        )
    if hint is None or (expected is not None and hint != expected):
        known = ", ".join(f'"{name}"' for name in ENDPOINTS)
        if expected is None:
            return (
                f"url is {show(url)}, which is not a batch endpoint batchkit supports "
                f"(use one of {known})"
            )
        return f'url is {show(url)} but the batch endpoint is "{expected}"'
    if missing_v1(url, hint):
        return f'url is {show(url)} but the batch endpoint is "{hint}" (missing "/v1"?)'
    return f'url is {show(url)}, which is not a batch endpoint: did you mean "{hint}"?'
