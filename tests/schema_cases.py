"""Hand-written bodies for the endpoints added in issue 10, for the differential corpus.

``test_schema_differential.py`` adds to each endpoint's hand-written bodies its sweep (each
property the spec names, and each slot below, set to each value of its palette), so the bodies
here are the ones no rule would write: valid bodies of each shape the endpoint takes, each enum
value, the bounds, and the mistakes users make (a chat body sent to /v1/responses).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Cases = list[tuple[str, Any]]

_DELETE = object()


def changed(base: dict[str, Any], path: str, value: Any = _DELETE) -> dict[str, Any]:
    """A deep copy of ``base`` with the dotted ``path`` set to ``value`` (or deleted)."""
    body = copy.deepcopy(base)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = body
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


def enum_cases(base: dict[str, Any], key: str, valid: list[Any], invalid: list[Any]) -> Cases:
    """Each value an enum (or a bounded option) takes is valid; each near miss is not."""
    name = key.replace("_", "-")
    return [
        *((f"valid/{name}/{value}", {**base, key: value}) for value in valid),
        *((f"{name}/{value!r}", {**base, key: value}) for value in invalid),
    ]


# -- /v1/responses ------------------------------------------------------------------------

RESPONSE = {"model": "gpt-4.1-mini", "input": "Tell me a short story."}
FUNCTION_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
JSON_SCHEMA_TEXT = {
    "format": {
        "type": "json_schema",
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "strict": True,
    }
}
INPUT_TEXT = {"type": "input_text", "text": "What is in this image?"}
INPUT_IMAGE = {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}
CHAT_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hi"},
]


def _message(role: str = "user", content: Any = "Hello") -> dict[str, Any]:
    return {"role": role, "content": content}


def _content(value: Any) -> list[dict[str, Any]]:
    return [_message(content=value)]


def response_cases() -> Cases:
    base = RESPONSE
    conversation = [*CHAT_MESSAGES, _message("assistant", "Hi!"), _message("user", "Again")]
    tool_round_trip = [
        _message("user", "Weather in Paris?"),
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
    ]
    return [
        ("valid/string-input", base),
        ("valid/empty-string-input", changed(base, "input", "")),
        ("valid/messages-as-input", changed(base, "input", CHAT_MESSAGES)),
        ("valid/conversation", changed(base, "input", conversation)),
        ("valid/developer", changed(base, "input", [_message("developer", "Be brief.")])),
        ("valid/typed-message", changed(base, "input", [{"type": "message", **_message()}])),
        (
            "valid/typed-assistant-message",
            changed(base, "input", [{"type": "message", **_message("assistant", "Hi")}]),
        ),
        ("valid/empty-input-list", changed(base, "input", [])),
        # Content as a list of parts: OpenAI's own examples, refused by the spec's oneOf.
        ("valid/input-text-part", changed(base, "input", _content([INPUT_TEXT]))),
        ("valid/input-image-part", changed(base, "input", _content([INPUT_TEXT, INPUT_IMAGE]))),
        (
            "valid/input-file-part",
            changed(base, "input", _content([{"type": "input_file", "file_id": "file-abc"}])),
        ),
        (
            "part/image-no-detail",
            changed(base, "input", _content([changed(INPUT_IMAGE, "detail")])),
        ),
        ("part/chat-text-type", changed(base, "input", _content([{"type": "text", "text": "x"}]))),
        ("valid/instructions", {**base, "instructions": "Answer in French."}),
        ("valid/no-model", changed(base, "model")),
        ("valid/text-format-json-schema", {**base, "text": JSON_SCHEMA_TEXT}),
        ("valid/text-format-json-object", {**base, "text": {"format": {"type": "json_object"}}}),
        ("valid/text-format-text", {**base, "text": {"format": {"type": "text"}}}),
        ("valid/text-verbosity", {**base, "text": {"verbosity": "low"}}),
        ("valid/function-tool", {**base, "tools": [FUNCTION_TOOL], "tool_choice": "auto"}),
        (
            "valid/tool-choice-function",
            {**base, "tools": [FUNCTION_TOOL], "tool_choice": {"type": "function", "name": "f"}},
        ),
        ("valid/web-search-tool", {**base, "tools": [{"type": "web_search"}]}),
        (
            "valid/file-search-tool",
            {**base, "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]},
        ),
        ("valid/tool-choice-types", {**base, "tool_choice": {"type": "file_search"}}),
        ("valid/tool-round-trip", changed(base, "input", tool_round_trip)),
        ("valid/item-reference", changed(base, "input", [{"id": "msg_1"}])),
        (
            "valid/typed-item-reference",
            changed(base, "input", [{"type": "item_reference", "id": "msg_1"}]),
        ),
        ("valid/reasoning", {**base, "reasoning": {"effort": "low", "summary": "auto"}}),
        ("valid/max-output-tokens-16", {**base, "max_output_tokens": 16}),
        ("valid/metadata", {**base, "metadata": {"run": "nightly"}}),
        ("valid/store-background-false", {**base, "store": False, "background": False}),
        ("valid/previous-response", {**base, "previous_response_id": "resp_1"}),
        ("valid/prompt-without-input", {"model": "gpt-4.1", "prompt": {"id": "pmpt_1"}}),
        (
            "valid/prompt-variables",
            {**base, "prompt": {"id": "pmpt_1", "version": "2", "variables": {"city": "Oslo"}}},
        ),
        ("valid/include", {**base, "include": ["reasoning.encrypted_content"]}),
        ("valid/stream-false", {**base, "stream": False}),
        ("valid/stream-true-schema-allows", {**base, "stream": True}),
        ("valid/truncation-service-tier", {**base, "truncation": "auto", "service_tier": "flex"}),
        ("valid/conversation-id", {**base, "conversation": {"id": "conv_1"}}),
        ("valid/context-management", {**base, "context_management": [{"type": "compaction"}]}),
        ("valid/unknown-provider-key", {**base, "provider_extra": {"a": 1}}),
        (
            "valid/nullables-null",
            {
                **base,
                **dict.fromkeys(
                    [
                        "instructions",
                        "temperature",
                        "top_p",
                        "max_output_tokens",
                        "max_tool_calls",
                        "metadata",
                        "previous_response_id",
                        "background",
                        "store",
                        "stream",
                        "parallel_tool_calls",
                        "truncation",
                        "service_tier",
                        "reasoning",
                        "include",
                        "prompt",
                        "conversation",
                        "safety_identifier",
                    ]
                ),
            },
        ),
        # The mistakes of a body written for another endpoint.
        ("chat/messages-body", {"model": "gpt-4.1-mini", "messages": CHAT_MESSAGES}),
        ("chat/messages-and-input", {**base, "messages": CHAT_MESSAGES}),
        ("chat/response-format", {**base, "response_format": {"type": "json_object"}}),
        ("input/missing", changed(base, "input")),
        ("input/number", changed(base, "input", 5)),
        ("input/object", changed(base, "input", _message())),
        ("input/strings", changed(base, "input", ["Tell me", "a story"])),
        ("message/tool-role", changed(base, "input", [_message("tool")])),
        ("message/role-missing", changed(base, "input", [{"content": "x"}])),
        ("message/content-missing", changed(base, "input", [{"role": "user"}])),
        ("message/content-number", changed(base, "input", [_message(content=5)])),
        ("item/unknown-type", changed(base, "input", [{"type": "video", "url": "x"}])),
        (
            "item/function-call-no-arguments",
            changed(base, "input", [{"type": "function_call", "call_id": "c", "name": "f"}]),
        ),
        (
            "item/function-call-output-missing",
            changed(base, "input", [{"type": "function_call_output", "call_id": "c"}]),
        ),
        ("item/reference-id-number", changed(base, "input", [{"id": 5}])),
        ("text-format/json", {**base, "text": {"format": {"type": "json"}}}),
        ("text-format/string", {**base, "text": {"format": "json_object"}}),
        ("text-format/missing-type", {**base, "text": {"format": {"name": "a"}}}),
        (
            "text-format/chat-json-schema",
            {**base, "text": {"format": {"type": "json_schema", "json_schema": {"name": "a"}}}},
        ),
        (
            "text-format/json-schema-no-schema",
            {**base, "text": changed(JSON_SCHEMA_TEXT, "format.schema")},
        ),
        ("text/verbosity-loud", {**base, "text": {"verbosity": "loud"}}),
        ("tool/function-no-parameters", {**base, "tools": [changed(FUNCTION_TOOL, "parameters")]}),
        ("tool/function-no-name", {**base, "tools": [changed(FUNCTION_TOOL, "name")]}),
        (
            "tool/chat-style-function",
            {**base, "tools": [{"type": "function", "function": {"name": "f"}}]},
        ),
        ("tool/unknown-type", {**base, "tools": [{"type": "calculator"}]}),
        ("tool/file-search-no-stores", {**base, "tools": [{"type": "file_search"}]}),
        ("tool-choice/sometimes", {**base, "tool_choice": "sometimes"}),
        ("tool-choice/function-no-name", {**base, "tool_choice": {"type": "function"}}),
        ("reasoning/effort-extreme", {**base, "reasoning": {"effort": "extreme"}}),
        ("include/unknown", {**base, "include": ["everything"]}),
        ("max-output-tokens/15", {**base, "max_output_tokens": 15}),
        ("max-output-tokens/float", {**base, "max_output_tokens": 100.5}),
        ("temperature/3", {**base, "temperature": 3}),
        ("top-logprobs/21", {**base, "top_logprobs": 21}),
        ("safety-identifier/65", {**base, "safety_identifier": "x" * 65}),
        ("prompt/no-id", {**base, "prompt": {"version": "1"}}),
        ("conversation/number", {**base, "conversation": 5}),
        (
            "context-management/threshold-999",
            {**base, "context_management": [{"type": "c", "compact_threshold": 999}]},
        ),
        ("moderation/no-model", {**base, "moderation": {"policy": None}}),
        ("body/string", "Tell me a short story."),
        ("body/array", [base]),
    ]


RESPONSE_SLOTS: list[tuple[str, Callable[[Any], Any]]] = [
    ("input/item", lambda v: [v]),
    ("input/role", lambda v: [_message(role=v)]),
    ("input/content", _content),
    ("input/part", lambda v: _content([v])),
    ("input/item-type", lambda v: [{"type": v, "role": "user", "content": "x"}]),
    ("input/item-reference", lambda v: [{"id": v}]),
    ("text/format", lambda v: {"format": v}),
    ("text/format-type", lambda v: {"format": {"type": v}}),
    ("tools/item", lambda v: [v]),
    ("tools/type", lambda v: [{"type": v}]),
    ("reasoning/effort", lambda v: {"effort": v}),
    ("prompt/id", lambda v: {"id": v}),
]


# -- /v1/moderations ----------------------------------------------------------------------

MODERATION = {"model": "omni-moderation-latest", "input": "I want to hug them."}
TEXT_PART = {"type": "text", "text": "I want to hug them."}
IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


def moderation_cases() -> Cases:
    base = MODERATION
    return [
        ("valid/string", base),
        ("valid/empty-string", changed(base, "input", "")),
        ("valid/unicode", changed(base, "input", "naïve café 東京")),
        ("valid/strings", changed(base, "input", ["a", "b"])),
        ("valid/one-string", changed(base, "input", ["a"])),
        ("valid/empty-strings", changed(base, "input", ["", ""])),
        ("valid/text-part", changed(base, "input", [TEXT_PART])),
        ("valid/image-part", changed(base, "input", [IMAGE_PART])),
        ("valid/text-and-image", changed(base, "input", [TEXT_PART, IMAGE_PART])),
        (
            "valid/data-url",
            changed(
                base,
                "input",
                [changed(IMAGE_PART, "image_url.url", "data:image/png;base64,iVBORw0KGgo=")],
            ),
        ),
        ("valid/no-model", changed(base, "model")),
        ("valid/text-model", changed(base, "model", "text-moderation-latest")),
        ("valid/other-model", changed(base, "model", "openai/omni-moderation-latest")),
        ("valid/part-extra-key", changed(base, "input", [{**TEXT_PART, "note": 1}])),
        ("valid/image-extra-key", changed(base, "input", [{**IMAGE_PART, "detail": "low"}])),
        ("valid/unknown-provider-key", {**base, "provider_extra": True}),
        ("valid/many-strings", changed(base, "input", ["x"] * 100)),
        ("input/missing", changed(base, "input")),
        ("input/empty-array", changed(base, "input", [])),
        ("input/string-then-part", changed(base, "input", ["a", TEXT_PART])),
        ("input/part-then-string", changed(base, "input", [TEXT_PART, "a"])),
        ("input/part-unknown-type", changed(base, "input", [{"type": "audio", "text": "a"}])),
        ("input/part-no-type", changed(base, "input", [{"text": "a"}])),
        ("input/text-part-no-text", changed(base, "input", [{"type": "text"}])),
        (
            "input/image-part-no-url",
            changed(base, "input", [{"type": "image_url", "image_url": {}}]),
        ),
        (
            "input/image-part-url-string",
            changed(base, "input", [{"type": "image_url", "image_url": "https://x"}]),
        ),
        ("input/chat-messages", changed(base, "input", [{"role": "user", "content": "x"}])),
        ("model/number", changed(base, "model", 1)),
        ("model/null", changed(base, "model", None)),
        ("input/null", changed(base, "input", None)),
        ("input/number", changed(base, "input", 5)),
        ("input/token-array", changed(base, "input", [1, 2])),
        ("body/string", "I want to hug them."),
    ]


MODERATION_SLOTS: list[tuple[str, Callable[[Any], Any]]] = [
    ("input/item", lambda v: [v]),
    ("input/second-item", lambda v: ["a", v]),
    ("input/first-of-two", lambda v: [v, "a"]),
    ("input/second-part", lambda v: [TEXT_PART, v]),
    ("input/part-type", lambda v: [{"type": v, "text": "x"}]),
    ("input/part-text", lambda v: [{"type": "text", "text": v}]),
    ("input/image-url", lambda v: [{"type": "image_url", "image_url": v}]),
    ("input/image-url-url", lambda v: [{"type": "image_url", "image_url": {"url": v}}]),
]


# -- /v1/images/generations and /v1/images/edits ------------------------------------------

IMAGE = {"model": "gpt-image-1", "prompt": "A watercolor of a lighthouse"}
IMAGE_SIZES = ["auto", "1024x1024", "1536x1024", "1024x1536"]


def image_cases() -> Cases:
    base = IMAGE
    return [
        ("valid/minimal", base),
        ("valid/no-model", changed(base, "model")),
        ("valid/dall-e-3", {**base, "model": "dall-e-3", "style": "vivid", "quality": "hd"}),
        ("valid/empty-prompt", changed(base, "prompt", "")),
        ("valid/any-size-string", {**base, "size": "256x256"}),
        ("valid/unknown-provider-key", {**base, "seed": 1}),
        *enum_cases(base, "n", [1, 10], [0, 11, 1.5, "1"]),
        *enum_cases(
            base, "quality", ["standard", "hd", "low", "medium", "high", "auto"], ["ultra", "HD"]
        ),
        *enum_cases(base, "response_format", ["url", "b64_json"], ["json", "b64"]),
        *enum_cases(base, "output_format", ["png", "jpeg", "webp"], ["jpg", "gif"]),
        *enum_cases(base, "background", ["transparent", "opaque", "auto"], ["white"]),
        *enum_cases(base, "moderation", ["low", "auto"], ["high"]),
        *enum_cases(base, "style", ["vivid", "natural"], ["photo"]),
        *enum_cases(base, "partial_images", [0, 3], [-1, 4]),
        *enum_cases(base, "output_compression", [0, 100], [50.5, "50"]),
        ("prompt/missing", changed(base, "prompt")),
        ("prompt/messages", {"model": "gpt-image-1", "messages": [{"role": "user"}]}),
        ("body/string", "A lighthouse"),
    ]


IMAGE_SLOTS: list[tuple[str, Callable[[Any], Any]]] = []

IMAGE_EDIT = {
    "model": "gpt-image-1",
    "prompt": "Add a watercolor effect",
    "images": [{"image_url": "https://example.com/source.png"}],
}


def image_edit_cases() -> Cases:
    base = IMAGE_EDIT
    return [
        ("valid/minimal", base),
        ("valid/file-id", changed(base, "images", [{"file_id": "file-abc"}])),
        ("valid/data-url", changed(base, "images.0.image_url", "data:image/png;base64,iVBO")),
        ("valid/16-images", changed(base, "images", [{"file_id": "f"}] * 16)),
        ("valid/mask", {**base, "mask": {"file_id": "file-mask"}}),
        ("valid/no-model", changed(base, "model")),
        ("valid/prompt-32000", changed(base, "prompt", "x" * 32000)),
        ("valid/unknown-provider-key", {**base, "seed": 1}),
        *enum_cases(base, "size", IMAGE_SIZES, ["256x256", "1792x1024"]),
        *enum_cases(base, "quality", ["low", "medium", "high", "auto"], ["hd", "standard"]),
        *enum_cases(base, "input_fidelity", ["high", "low"], ["medium"]),
        *enum_cases(base, "output_format", ["png", "jpeg", "webp"], ["jpg"]),
        *enum_cases(base, "output_compression", [0, 100], [-1, 101]),
        *enum_cases(base, "n", [1, 10], [0, 11]),
        *enum_cases(base, "partial_images", [0, 3], [4]),
        *enum_cases(base, "background", ["transparent", "opaque", "auto"], ["white"]),
        ("images/missing", changed(base, "images")),
        ("images/empty", changed(base, "images", [])),
        ("images/17", changed(base, "images", [{"file_id": "f"}] * 17)),
        ("images/both-url-and-file", changed(base, "images.0.file_id", "file-abc")),
        ("images/neither", changed(base, "images", [{}])),
        ("images/extra-key", changed(base, "images.0.detail", "low")),
        ("images/url-string", changed(base, "images", ["https://example.com/a.png"])),
        ("images/multipart-image-field", {**changed(base, "images"), "image": "file.png"}),
        ("mask/empty", {**base, "mask": {}}),
        ("prompt/missing", changed(base, "prompt")),
        ("prompt/empty", changed(base, "prompt", "")),
        ("prompt/32001", changed(base, "prompt", "x" * 32001)),
        ("body/string", "Add a watercolor effect"),
    ]


IMAGE_EDIT_SLOTS: list[tuple[str, Callable[[Any], Any]]] = [
    ("images/item", lambda v: [v]),
    ("images/image-url", lambda v: [{"image_url": v}]),
    ("images/file-id", lambda v: [{"file_id": v}]),
]


# -- /v1/videos ---------------------------------------------------------------------------

VIDEO = {
    "model": "sora-2",
    "prompt": "A calico cat playing a piano on stage",
    "input_reference": {"image_url": "https://example.com/cat.png"},
}


def video_cases() -> Cases:
    base = VIDEO
    return [
        ("valid/minimal", base),
        ("valid/prompt-only", {"prompt": "A cat"}),
        ("valid/file-reference", changed(base, "input_reference", {"file_id": "file-abc"})),
        ("valid/empty-reference", changed(base, "input_reference", {})),
        ("valid/prompt-32000", changed(base, "prompt", "x" * 32000)),
        ("valid/unknown-provider-key", {**base, "seed": 1}),
        *(
            (f"valid/model/{model}", changed(base, "model", model))
            for model in (
                "sora-2-pro",
                "sora-2-2025-10-06",
                "sora-2-pro-2025-10-06",
                "openai/sora-2",
            )
        ),
        ("valid/reference-extra-key", changed(base, "input_reference.detail", "low")),
        ("model/null", changed(base, "model", None)),
        ("seconds/null", {**base, "seconds": None}),
        ("size/null", {**base, "size": None}),
        *enum_cases(base, "seconds", ["4", "8", "12"], ["5", 4, 8, "4s", ""]),
        *enum_cases(
            base,
            "size",
            ["720x1280", "1280x720", "1024x1792", "1792x1024"],
            ["1920x1080", "720X1280", "720 x 1280"],
        ),
        ("prompt/missing", changed(base, "prompt")),
        ("prompt/empty", changed(base, "prompt", "")),
        ("prompt/32001", changed(base, "prompt", "x" * 32001)),
        ("reference/string", changed(base, "input_reference", "https://example.com/cat.png")),
        ("body/string", "A cat"),
    ]


VIDEO_SLOTS: list[tuple[str, Callable[[Any], Any]]] = [
    ("input_reference.image_url", lambda v: v),
    ("input_reference.file_id", lambda v: v),
    ("input_reference/with-both", lambda v: {"image_url": "https://x", "file_id": v}),
    ("input_reference/extra-key", lambda v: {"image_url": "https://x", "note": v}),
    ("input_reference/file-extra-key", lambda v: {"file_id": "file-abc", "note": v}),
]
