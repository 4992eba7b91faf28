"""Our hand-written request-body schemas against the official ones, body by body.

The official component schemas (one per endpoint of batchkit.endpoints:
CreateChatCompletionRequest, CreateResponse, EditImageBodyJsonParam...) come from the OpenAPI
spec in ``shared/specs/`` beside the repository.
They do not load into a Draft 2020-12 validator as they are (OpenAPI's ``nullable``, boolean
``exclusiveMinimum``, duplicate ``required`` entries, ``$recursiveRef``), so they are converted
first. Then every body of a corpus of hand-written bodies and systematic mutations of them must
get the same verdict from both schemas, except for the deliberate disagreements listed in
``DELIBERATE``, which must really disagree, so that list stays honest.

``test_schemas.py`` reuses ``CORPUS`` from here to check that both validation engines agree.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from batchkit import schemas
from batchkit.endpoints import ENDPOINTS
from tests import schema_cases
from tests.helpers import REPO
from tests.schema_cases import changed

SCHEMA_DIR = REPO / "schemas"
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared/specs/openai-openapi.yaml"

#: Every endpoint batchkit knows (schema file stem -> the spec's component): a new endpoint
#: joins the corpus, and its floor, by being added to batchkit.endpoints.
OFFICIAL = {
    endpoint.schema.removesuffix(".json"): endpoint.spec_component
    for endpoint in ENDPOINTS.values()
}
#: The least number of bodies per endpoint.
CORPUS_FLOOR = 200

# --------------------------------------------------------------------------------------------
# The official schemas, converted to Draft 2020-12
# --------------------------------------------------------------------------------------------

_COMPONENT_PREFIX = "#/components/schemas/"
# Keywords whose value is a map of name -> schema, a list of schemas, or one schema: the
# converter walks into these and leaves every other value (enum, default, const...) alone.
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_SCHEMAS = {
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
}
# OpenAPI-only keywords (``example`` is not a JSON Schema keyword; ``examples`` must be a list
# in 2020-12 but OpenAPI documents sometimes use a map).
_DROP = {"discriminator", "example", "examples", "xml", "externalDocs", "nullable"}
_DROP_DYNAMIC = {"$recursiveAnchor"}


@functools.lru_cache(maxsize=1)
def official_components() -> dict[str, Any]:
    """Parse the 3 MB spec once per test session."""
    assert SPEC_PATH.is_file(), f"the official spec is expected at {SPEC_PATH}"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as fh:
        spec = yaml.load(fh, Loader=loader)
    return spec["components"]["schemas"]


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "$ref" and isinstance(value, str):
                    assert value.startswith(_COMPONENT_PREFIX), value
                    found.add(value[len(_COMPONENT_PREFIX) :])
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _convert(node: Any, owner: str) -> Any:
    """One OpenAPI schema object -> Draft 2020-12. ``owner``: the component it belongs to."""
    if not isinstance(node, dict):
        return node  # boolean schemas
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") or key in _DROP or key in _DROP_DYNAMIC:
            continue
        if key in _SCHEMA_MAPS:
            out[key] = {name: _convert(sub, owner) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [_convert(sub, owner) for sub in value]
        elif key in _SCHEMAS:
            if isinstance(value, list):  # old tuple-form items
                out[key] = [_convert(sub, owner) for sub in value]
            else:
                out[key] = _convert(value, owner)
        elif key == "$ref":
            out[key] = "#/$defs/" + value[len(_COMPONENT_PREFIX) :]
        elif key == "$recursiveRef":
            # "#" means the component that holds the $recursiveAnchor: its $defs entry.
            out["$ref"] = f"#/$defs/{owner}"
        elif key == "required":
            out[key] = list(dict.fromkeys(value))  # the spec repeats some entries
        else:
            out[key] = value
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # OpenAPI 3.0 style: a boolean flag that makes minimum/maximum exclusive.
        flag = out.pop(exclusive) if isinstance(out.get(exclusive), bool) else None
        if flag and inclusive in out:
            out[exclusive] = out.pop(inclusive)
    if node.get("nullable") is True:
        out = {"anyOf": [{"type": "null"}, out]}
    return out


@functools.cache
def official_schema(endpoint: str) -> dict[str, Any]:
    """The endpoint's official component with every component it refers to in ``$defs``."""
    components = official_components()
    root = OFFICIAL[endpoint]
    names, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name not in names:
            names.add(name)
            todo.extend(_refs(components[name]))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/$defs/{root}",
        "$defs": {name: _convert(components[name], name) for name in sorted(names)},
    }


@functools.cache
def our_schema(endpoint: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{endpoint}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    endpoint: str
    name: str
    body: Any

    @property
    def id(self) -> str:
        return f"{self.endpoint}:{self.name}"


def user(text: str = "Hello") -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": list(messages or [user()]), **params}


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}
TEXT = {"type": "text", "text": "What is in this image?"}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
FILE = {"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}}
REFUSAL = {"type": "refusal", "refusal": "I can't help with that."}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "strict": True,
    },
}
TOOL_CONVERSATION = chat(
    user("Weather in Paris?"),
    {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    tools=[WEATHER_TOOL],
)


def _chat_cases() -> list[tuple[str, Any]]:
    base = chat(user("Say hi"))
    cases: list[tuple[str, Any]] = [
        # valid bodies
        ("valid/minimal", base),
        ("valid/system+user", chat({"role": "system", "content": "Be brief."}, user())),
        ("valid/developer+user", chat({"role": "developer", "content": "Be brief."}, user())),
        ("valid/user-name", chat({"role": "user", "content": "Hi", "name": "ann"})),
        ("valid/empty-string-content", chat(user(""))),
        ("valid/user-text-parts", chat({"role": "user", "content": [TEXT]})),
        ("valid/user-image", chat({"role": "user", "content": [TEXT, IMAGE]})),
        ("valid/user-audio", chat({"role": "user", "content": [AUDIO]})),
        ("valid/user-file", chat({"role": "user", "content": [FILE, TEXT]})),
        ("valid/system-text-parts", chat({"role": "system", "content": [TEXT]}, user())),
        ("valid/assistant-string", chat(user(), {"role": "assistant", "content": "Hi!"}, user())),
        ("valid/assistant-parts", chat(user(), {"role": "assistant", "content": [TEXT]})),
        ("valid/assistant-refusal-part", chat(user(), {"role": "assistant", "content": [REFUSAL]})),
        ("valid/tool-conversation", TOOL_CONVERSATION),
        (
            "valid/assistant-tool-calls-no-content",
            changed(TOOL_CONVERSATION, "messages.1.content"),
        ),
        (
            "valid/assistant-custom-tool-call",
            changed(
                TOOL_CONVERSATION,
                "messages.1.tool_calls.0",
                {"id": "c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
            ),
        ),
        (
            "valid/assistant-function-call",
            chat(
                user(),
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "f", "arguments": "{}"},
                },
                {"role": "function", "name": "f", "content": "42"},
            ),
        ),
        (
            "valid/assistant-audio-reference",
            chat(user(), {"role": "assistant", "audio": {"id": "audio_1"}}, user()),
        ),
        (
            "valid/tool-text-parts",
            changed(TOOL_CONVERSATION, "messages.2.content", [{"type": "text", "text": "21"}]),
        ),
        ("valid/function-null-content", chat({"role": "function", "name": "f", "content": None})),
        (
            "valid/sampling-low-bounds",
            chat(temperature=0, top_p=0, frequency_penalty=-2, presence_penalty=-2, n=1),
        ),
        (
            "valid/sampling-high-bounds",
            chat(temperature=2, top_p=1, frequency_penalty=2, presence_penalty=2, n=128),
        ),
        ("valid/float-params", chat(temperature=0.7, top_p=0.95, frequency_penalty=0.5)),
        ("valid/logprobs", chat(logprobs=True, top_logprobs=20)),
        ("valid/logprobs-zero", chat(logprobs=True, top_logprobs=0)),
        ("valid/stop-string", chat(stop="\n")),
        ("valid/stop-4-strings", chat(stop=["a", "b", "c", "d"])),
        ("valid/logit-bias-bounds", chat(logit_bias={"50256": -100, "1": 100, "2": 0})),
        ("valid/max-tokens", chat(max_tokens=256, max_completion_tokens=1024)),
        ("valid/response-format-text", chat(response_format={"type": "text"})),
        ("valid/response-format-json-object", chat(response_format={"type": "json_object"})),
        ("valid/response-format-json-schema", chat(response_format=JSON_SCHEMA_FORMAT)),
        ("valid/tools-auto", chat(tools=[WEATHER_TOOL], tool_choice="auto")),
        ("valid/tool-choice-required", chat(tools=[WEATHER_TOOL], tool_choice="required")),
        ("valid/tool-choice-none", chat(tools=[WEATHER_TOOL], tool_choice="none")),
        (
            "valid/tool-choice-named",
            chat(
                tools=[WEATHER_TOOL],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                parallel_tool_calls=False,
            ),
        ),
        (
            "valid/tool-choice-allowed-tools",
            chat(
                tools=[WEATHER_TOOL],
                tool_choice={
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "auto", "tools": [{"type": "function"}]},
                },
            ),
        ),
        (
            "valid/custom-tool-grammar",
            chat(
                tools=[
                    {
                        "type": "custom",
                        "custom": {
                            "name": "sql",
                            "format": {
                                "type": "grammar",
                                "grammar": {"definition": "start: /.+/", "syntax": "lark"},
                            },
                        },
                    }
                ],
                tool_choice={"type": "custom", "custom": {"name": "sql"}},
            ),
        ),
        (
            "valid/custom-tool-text-format",
            chat(tools=[{"type": "custom", "custom": {"name": "t", "format": {"type": "text"}}}]),
        ),
        (
            "valid/nullables-null",
            chat(
                temperature=None,
                top_p=None,
                n=None,
                max_tokens=None,
                max_completion_tokens=None,
                frequency_penalty=None,
                presence_penalty=None,
                stop=None,
                logit_bias=None,
                logprobs=None,
                seed=None,
                store=None,
                stream=None,
                stream_options=None,
                audio=None,
                prediction=None,
                metadata=None,
                service_tier=None,
                reasoning_effort=None,
                verbosity=None,
                modalities=None,
            ),
        ),
        (
            "valid/audio-output",
            chat(modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"}),
        ),
        ("valid/audio-custom-voice", chat(audio={"voice": {"id": "voice_1"}, "format": "mp3"})),
        ("valid/prediction", chat(prediction={"type": "content", "content": "old text"})),
        (
            "valid/options",
            chat(
                metadata={"run": "42"},
                store=False,
                service_tier="flex",
                reasoning_effort="low",
                verbosity="high",
                seed=7,
                user="u-1",
                safety_identifier="s" * 64,
                prompt_cache_key="k",
            ),
        ),
        ("valid/stream-false", chat(stream=False, stream_options={"include_usage": True})),
        ("valid/stream-true-schema-allows", chat(stream=True)),
        ("valid/unknown-provider-key", chat(provider_extra={"anything": 1})),
        (
            "valid/web-search",
            chat(
                web_search_options={
                    "search_context_size": "low",
                    "user_location": {"type": "approximate", "approximate": {"city": "Oslo"}},
                }
            ),
        ),
        (
            "valid/functions-deprecated",
            chat(functions=[{"name": "f", "parameters": {"type": "object"}}], function_call="auto"),
        ),
        ("valid/function-call-named", chat(functions=[{"name": "f"}], function_call={"name": "f"})),
        ("valid/moderation", chat(moderation={"model": "omni-moderation-latest"})),
        # the body's own keys
        ("model/missing", changed(base, "model")),
        ("model/not-string", changed(base, "model", 4)),
        ("model/null", changed(base, "model", None)),
        ("messages/missing", changed(base, "messages")),
        ("messages/empty", changed(base, "messages", [])),
        ("messages/string", changed(base, "messages", "Say hi")),
        ("messages/object", changed(base, "messages", user())),
        ("messages/item-string", changed(base, "messages", ["Say hi"])),
        ("body/array", [base]),
        # roles
        ("role/missing", changed(base, "messages.0.role")),
        ("role/narrator", changed(base, "messages.0.role", "narrator")),
        ("role/capitalised", changed(base, "messages.0.role", "User")),
        ("role/null", changed(base, "messages.0.role", None)),
        ("role/number", changed(base, "messages.0.role", 1)),
        ("user/content-missing", changed(base, "messages.0.content")),
        ("user/content-number", changed(base, "messages.0.content", 5)),
        ("user/content-null", changed(base, "messages.0.content", None)),
        ("user/content-empty-array", changed(base, "messages.0.content", [])),
        ("user/content-object", changed(base, "messages.0.content", TEXT)),
        ("user/name-number", changed(base, "messages.0.name", 5)),
        ("system/content-missing", chat({"role": "system"}, user())),
        ("system/image-part", chat({"role": "system", "content": [IMAGE]}, user())),
        ("developer/content-number", chat({"role": "developer", "content": 1}, user())),
        ("developer/audio-part", chat({"role": "developer", "content": [AUDIO]}, user())),
        ("tool/missing-tool-call-id", changed(TOOL_CONVERSATION, "messages.2.tool_call_id")),
        ("tool/tool-call-id-number", changed(TOOL_CONVERSATION, "messages.2.tool_call_id", 1)),
        ("tool/content-missing", changed(TOOL_CONVERSATION, "messages.2.content")),
        ("tool/image-part", changed(TOOL_CONVERSATION, "messages.2.content", [IMAGE])),
        ("function/name-missing", chat({"role": "function", "content": "42"})),
        ("assistant/image-part", chat(user(), {"role": "assistant", "content": [IMAGE]})),
        ("assistant/content-number", chat(user(), {"role": "assistant", "content": 3})),
        ("assistant/content-null-alone", chat(user(), {"role": "assistant", "content": None})),
        ("assistant/empty", chat(user(), {"role": "assistant"})),
        (
            "assistant/tool-calls-not-array",
            changed(TOOL_CONVERSATION, "messages.1.tool_calls", TOOL_CALL),
        ),
        ("assistant/tool-call-no-id", changed(TOOL_CONVERSATION, "messages.1.tool_calls.0.id")),
        (
            "assistant/tool-call-no-arguments",
            changed(TOOL_CONVERSATION, "messages.1.tool_calls.0.function.arguments"),
        ),
        (
            "assistant/tool-call-arguments-object",
            changed(TOOL_CONVERSATION, "messages.1.tool_calls.0.function.arguments", {"a": 1}),
        ),
        (
            "assistant/tool-call-bad-type",
            changed(TOOL_CONVERSATION, "messages.1.tool_calls.0.type", "fn"),
        ),
        # content parts
        ("part/unknown-type", chat({"role": "user", "content": [{"type": "video", "url": "x"}]})),
        ("part/missing-type", chat({"role": "user", "content": [{"text": "hi"}]})),
        ("part/not-object", chat({"role": "user", "content": ["hi"]})),
        ("part/text-missing", chat({"role": "user", "content": [{"type": "text"}]})),
        ("part/text-number", chat({"role": "user", "content": [{"type": "text", "text": 1}]})),
        ("part/image-no-url", chat({"role": "user", "content": [changed(IMAGE, "image_url.url")]})),
        (
            "part/image-url-string",
            chat({"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]}),
        ),
        (
            "part/image-bad-detail",
            chat({"role": "user", "content": [changed(IMAGE, "image_url.detail", "ultra")]}),
        ),
        (
            "part/audio-bad-format",
            chat({"role": "user", "content": [changed(AUDIO, "input_audio.format", "ogg")]}),
        ),
        (
            "part/audio-no-data",
            chat({"role": "user", "content": [changed(AUDIO, "input_audio.data")]}),
        ),
        (
            "part/file-not-object",
            chat({"role": "user", "content": [changed(FILE, "file", "a.pdf")]}),
        ),
        ("part/refusal-in-user", chat({"role": "user", "content": [REFUSAL]})),
        # sampling and limits
        ("logprobs/string", chat(logprobs="yes")),
        ("stop/5-strings", chat(stop=["a", "b", "c", "d", "e"])),
        ("stop/empty-array", chat(stop=[])),
        ("stop/number-item", chat(stop=[1])),
        ("stop/number", chat(stop=5)),
        ("logit-bias/101", chat(logit_bias={"50256": 101})),
        ("logit-bias/-101", chat(logit_bias={"50256": -101})),
        ("logit-bias/float", chat(logit_bias={"50256": 1.5})),
        ("logit-bias/array", chat(logit_bias=[1, 2])),
        ("max-tokens/string", chat(max_tokens="100")),
        ("max-tokens/float", chat(max_tokens=1.5)),
        ("max-completion-tokens/string", chat(max_completion_tokens="x")),
        ("seed/string", chat(seed="7")),
        # response format, tools
        ("response-format/unknown-type", chat(response_format={"type": "yaml"})),
        ("response-format/string", chat(response_format="json")),
        ("response-format/no-type", chat(response_format={})),
        ("response-format/json-schema-missing", chat(response_format={"type": "json_schema"})),
        (
            "response-format/json-schema-no-name",
            chat(response_format=changed(JSON_SCHEMA_FORMAT, "json_schema.name")),
        ),
        ("tools/not-array", chat(tools=WEATHER_TOOL)),
        ("tools/unknown-type", chat(tools=[changed(WEATHER_TOOL, "type", "retrieval")])),
        ("tools/no-function", chat(tools=[changed(WEATHER_TOOL, "function")])),
        ("tools/function-no-name", chat(tools=[changed(WEATHER_TOOL, "function.name")])),
        (
            "tools/parameters-string",
            chat(tools=[changed(WEATHER_TOOL, "function.parameters", "{}")]),
        ),
        (
            "tools/custom-grammar-bad-syntax",
            chat(
                tools=[
                    {
                        "type": "custom",
                        "custom": {
                            "name": "sql",
                            "format": {
                                "type": "grammar",
                                "grammar": {"definition": "x", "syntax": "ebnf"},
                            },
                        },
                    }
                ]
            ),
        ),
        ("tool-choice/unknown-string", chat(tool_choice="sometimes")),
        ("tool-choice/function-missing", chat(tool_choice={"type": "function"})),
        ("tool-choice/function-no-name", chat(tool_choice={"type": "function", "function": {}})),
        ("tool-choice/unknown-type", chat(tool_choice={"type": "browser"})),
        ("tool-choice/number", chat(tool_choice=1)),
        ("parallel-tool-calls/null", chat(parallel_tool_calls=None)),
        ("functions/empty", chat(functions=[])),
        ("functions/129", chat(functions=[{"name": f"f{i}"} for i in range(129)])),
        ("function-call/unknown-string", chat(function_call="always")),
        # enums and objects
        ("service-tier/unknown", chat(service_tier="turbo")),
        ("reasoning-effort/unknown", chat(reasoning_effort="extreme")),
        ("verbosity/unknown", chat(verbosity="loud")),
        ("modalities/unknown", chat(modalities=["video"])),
        ("audio/missing-format", chat(audio={"voice": "alloy"})),
        ("audio/bad-format", chat(audio={"voice": "alloy", "format": "ogg"})),
        ("audio/voice-number", chat(audio={"voice": 5, "format": "wav"})),
        ("prediction/bad-type", chat(prediction={"type": "text", "content": "x"})),
        ("metadata/non-string-value", chat(metadata={"run": 42})),
        ("stream/string", chat(stream="true")),
        ("stream-options/string", chat(stream_options="usage")),
        ("safety-identifier/65-chars", chat(safety_identifier="s" * 65)),
        ("user/number", chat(user=5)),
        ("moderation/no-model", chat(moderation={})),
        (
            "web-search/location-no-type",
            chat(web_search_options={"user_location": {"approximate": {}}}),
        ),
        ("top-logprobs/null", chat(top_logprobs=None)),
    ]
    ranges = {
        "temperature": (0, 2, 0.01),
        "top_p": (0, 1, 0.01),
        "frequency_penalty": (-2, 2, 0.01),
        "presence_penalty": (-2, 2, 0.5),
        "n": (1, 128, 1),
        "top_logprobs": (0, 20, 1),
    }
    cases += _range_cases(base, ranges)
    return cases


def _range_cases(
    base: dict[str, Any], ranges: dict[str, tuple[float, float | None, float]]
) -> list[tuple[str, Any]]:
    """Each bound: just outside it on both sides, plus a string where a number belongs."""
    cases: list[tuple[str, Any]] = []
    for key, (low, high, step) in ranges.items():
        name = key.replace("_", "-")
        cases.append((f"{name}/below-min", changed(base, key, low - step)))
        if high is not None:
            cases.append((f"{name}/above-max", changed(base, key, high + step)))
        cases.append((f"{name}/string", changed(base, key, str(low))))
    return cases


def _embedding_cases() -> list[tuple[str, Any]]:
    base = {"model": "text-embedding-3-small", "input": "The quick brown fox"}
    cases: list[tuple[str, Any]] = [
        ("valid/string", base),
        ("valid/single-space", changed(base, "input", " ")),
        ("valid/unicode", changed(base, "input", "naïve café 東京")),
        ("valid/strings", changed(base, "input", ["a", "b", "c"])),
        ("valid/one-string-array", changed(base, "input", ["a"])),
        ("valid/2048-strings", changed(base, "input", ["x"] * 2048)),
        ("valid/tokens", changed(base, "input", [1212, 318, 257, 1332, 13])),
        ("valid/2048-tokens", changed(base, "input", [1] * 2048)),
        ("valid/token-arrays", changed(base, "input", [[1212, 318], [257]])),
        ("valid/2048-token-arrays", changed(base, "input", [[1]] * 2048)),
        ("valid/float-format", {**base, "encoding_format": "float"}),
        ("valid/base64-format", {**base, "encoding_format": "base64"}),
        ("valid/dimensions-1", {**base, "dimensions": 1}),
        ("valid/dimensions-256", {**base, "dimensions": 256}),
        ("valid/user", {**base, "user": "u-1"}),
        (
            "valid/all-keys",
            {**base, "encoding_format": "float", "dimensions": 512, "user": "u"},
        ),
        ("valid/other-model-name", changed(base, "model", "openai/text-embedding-3-large")),
        ("model/missing", changed(base, "model")),
        ("model/number", changed(base, "model", 3)),
        ("model/null", changed(base, "model", None)),
        ("input/missing", changed(base, "input")),
        ("input/null", changed(base, "input", None)),
        ("input/number", changed(base, "input", 5)),
        ("input/bool", changed(base, "input", True)),
        ("input/object", changed(base, "input", {"text": "a"})),
        ("input/empty-string", changed(base, "input", "")),
        ("input/array-of-one-empty-string", changed(base, "input", [""])),
        ("input/array-with-empty-string", changed(base, "input", ["a", ""])),
        ("input/empty-array", changed(base, "input", [])),
        ("input/2049-strings", changed(base, "input", ["x"] * 2049)),
        ("input/2049-tokens", changed(base, "input", [1] * 2049)),
        ("input/2049-token-arrays", changed(base, "input", [[1]] * 2049)),
        ("input/empty-token-array", changed(base, "input", [[]])),
        ("input/second-token-array-empty", changed(base, "input", [[1], []])),
        ("input/string-then-number", changed(base, "input", ["a", 1])),
        ("input/number-then-string", changed(base, "input", [1, "a"])),
        ("input/token-array-then-number", changed(base, "input", [[1], 1])),
        ("input/number-then-token-array", changed(base, "input", [1, [1]])),
        ("input/float-token", changed(base, "input", [1.5])),
        ("input/bool-token", changed(base, "input", [True])),
        ("input/string-in-token-array", changed(base, "input", [[1, "a"]])),
        ("input/nested-token-arrays", changed(base, "input", [[[1]]])),
        ("input/null-item", changed(base, "input", [None])),
        ("input/object-item", changed(base, "input", [{"text": "a"}])),
        ("encoding-format/int8", {**base, "encoding_format": "int8"}),
        ("encoding-format/null", {**base, "encoding_format": None}),
        ("encoding-format/capitalised", {**base, "encoding_format": "Float"}),
        ("dimensions/0", {**base, "dimensions": 0}),
        ("dimensions/-1", {**base, "dimensions": -1}),
        ("dimensions/float", {**base, "dimensions": 1.5}),
        ("dimensions/string", {**base, "dimensions": "256"}),
        ("dimensions/null", {**base, "dimensions": None}),
        ("user/number", {**base, "user": 5}),
        ("user/null", {**base, "user": None}),
        ("unknown/temperature", {**base, "temperature": 0.5}),
        ("unknown/stream", {**base, "stream": False}),
        ("unknown/provider-key", {**base, "provider_extra": {}}),
        ("unknown/metadata", {**base, "metadata": {"a": "b"}}),
        ("body/string", "The quick brown fox"),
        ("body/empty-object", {}),
    ]
    return cases


def _completion_cases() -> list[tuple[str, Any]]:
    base = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"}
    cases: list[tuple[str, Any]] = [
        ("valid/string", base),
        ("valid/empty-string", changed(base, "prompt", "")),
        ("valid/null-prompt", changed(base, "prompt", None)),
        ("valid/strings", changed(base, "prompt", ["a", "b"])),
        ("valid/strings-with-empty", changed(base, "prompt", ["a", ""])),
        ("valid/tokens", changed(base, "prompt", [1212, 318, 257])),
        ("valid/token-arrays", changed(base, "prompt", [[1212, 318], [257]])),
        ("valid/bounds-low", {**base, "best_of": 0, "logprobs": 0, "max_tokens": 0, "n": 1}),
        ("valid/bounds-high", {**base, "best_of": 20, "logprobs": 5, "n": 128, "temperature": 2}),
        (
            "valid/penalties",
            {**base, "frequency_penalty": -2, "presence_penalty": 2, "top_p": 0.1},
        ),
        ("valid/echo-suffix", {**base, "echo": True, "suffix": " end"}),
        ("valid/stop-list", {**base, "stop": ["\n", "END"]}),
        ("valid/stop-string", {**base, "stop": "\n"}),
        ("valid/logit-bias", {**base, "logit_bias": {"50256": -100}}),
        ("valid/seed-user", {**base, "seed": 1, "user": "u-1"}),
        ("valid/stream-options", {**base, "stream": False, "stream_options": None}),
        ("valid/large-max-tokens", {**base, "max_tokens": 4096}),
        ("valid/unknown-provider-key", {**base, "provider_extra": True}),
        (
            "valid/nullables-null",
            {
                **base,
                "best_of": None,
                "echo": None,
                "frequency_penalty": None,
                "presence_penalty": None,
                "logit_bias": None,
                "logprobs": None,
                "max_tokens": None,
                "n": None,
                "seed": None,
                "stop": None,
                "stream": None,
                "suffix": None,
                "temperature": None,
                "top_p": None,
            },
        ),
        ("model/missing", changed(base, "model")),
        ("model/number", changed(base, "model", 1)),
        ("model/null", changed(base, "model", None)),
        ("prompt/missing", changed(base, "prompt")),
        ("prompt/number", changed(base, "prompt", 5)),
        ("prompt/object", changed(base, "prompt", {"text": "a"})),
        ("prompt/empty-array", changed(base, "prompt", [])),
        ("prompt/empty-token-array", changed(base, "prompt", [[]])),
        ("prompt/string-then-number", changed(base, "prompt", ["a", 1])),
        ("prompt/number-then-string", changed(base, "prompt", [1, "a"])),
        ("prompt/float-token", changed(base, "prompt", [1.5])),
        ("prompt/null-item", changed(base, "prompt", [None])),
        ("prompt/string-in-token-array", changed(base, "prompt", [[1, "a"]])),
        ("logprobs/bool", {**base, "logprobs": True}),
        ("max-tokens/float", {**base, "max_tokens": 1.5}),
        ("stop/5-strings", {**base, "stop": ["a", "b", "c", "d", "e"]}),
        ("stop/empty-array", {**base, "stop": []}),
        ("stop/number", {**base, "stop": 1}),
        ("logit-bias/101", {**base, "logit_bias": {"50256": 101}}),
        ("logit-bias/string-value", {**base, "logit_bias": {"50256": "-100"}}),
        ("echo/string", {**base, "echo": "yes"}),
        ("suffix/number", {**base, "suffix": 5}),
        ("user/number", {**base, "user": 5}),
        ("stream/string", {**base, "stream": "false"}),
        ("stream-options/array", {**base, "stream_options": []}),
    ]
    ranges = {
        "best_of": (0, 20, 1),
        "logprobs": (0, 5, 1),
        "max_tokens": (0, None, 1),
        "n": (1, 128, 1),
        "temperature": (0, 2, 0.001),
        "top_p": (0, 1, 0.001),
        "frequency_penalty": (-2, 2, 0.1),
        "presence_penalty": (-2, 2, 1),
    }
    cases += _range_cases(base, ranges)
    return cases


#: What each property of each endpoint is set to in turn (:func:`_sweep`): each JSON type,
#: the empty and the one-item forms, and numbers on and off the usual bounds.
PALETTE: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "0": 0,
    "1": 1,
    "-1": -1,
    "2.5": 2.5,
    "300": 300,
    "empty-string": "",
    "string": "x",
    "empty-array": [],
    "array-of-empty-string": [""],
    "array-of-string": ["a"],
    "array-of-1": [1],
    "array-of-array-of-1": [[1]],
    "empty-object": {},
    "object": {"a": 1},
}
#: The valid body each sweep starts from.
SWEEP_BASES: dict[str, dict[str, Any]] = {
    "chat_completions": chat(user("Say hi")),
    "embeddings": {"model": "text-embedding-3-small", "input": "The quick brown fox"},
    "completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"},
    "responses": schema_cases.RESPONSE,
    "moderations": schema_cases.MODERATION,
    "images": schema_cases.IMAGE,
    "image_edits": schema_cases.IMAGE_EDIT,
    "videos": schema_cases.VIDEO,
}
#: Where, besides each top-level property, a value of the palette is put: the places whose
#: rules are the endpoint's own (embedding inputs, prompts, messages).
SWEEP_SLOTS: dict[str, list[tuple[str, Any]]] = {
    "chat_completions": [
        ("messages.0.content", lambda v: v),
        ("messages.0.role", lambda v: v),
    ],
    "embeddings": [
        ("input/item", lambda v: [v]),
        ("input/second-item", lambda v: ["a", v]),
        ("input/token-array-item", lambda v: [[v]]),
        ("input/first-of-two", lambda v: [v, 1]),
    ],
    "completions": [("prompt/item", lambda v: [v])],
    "responses": schema_cases.RESPONSE_SLOTS,
    "moderations": schema_cases.MODERATION_SLOTS,
    "images": schema_cases.IMAGE_SLOTS,
    "image_edits": schema_cases.IMAGE_EDIT_SLOTS,
    "videos": schema_cases.VIDEO_SLOTS,
}


def spec_properties(endpoint: str) -> list[str]:
    """The body keys the official component names: its own and its ``allOf`` parts', however
    deep (CreateResponse is an ``allOf`` of parts that are ``allOf`` themselves)."""
    definitions = official_schema(endpoint)["$defs"]
    names: set[str] = set()
    todo = [definitions[OFFICIAL[endpoint]]]
    while todo:
        part = todo.pop()
        if "$ref" in part:
            part = definitions[part["$ref"].removeprefix("#/$defs/")]
        names.update(part.get("properties", {}))
        todo.extend(part.get("allOf", []))
    return sorted(names)


def _sweep(endpoint: str) -> list[tuple[str, Any]]:
    """Each property the spec names, and each slot of :data:`SWEEP_SLOTS`, set to each value
    of :data:`PALETTE` in turn: bodies no one chose by hand, so no one chose their verdict."""
    base = SWEEP_BASES[endpoint]
    cases = []
    for label, value in PALETTE.items():
        for name in spec_properties(endpoint):
            cases.append((f"sweep/{name}/{label}", changed(base, name, value)))
        for slot, wrap in SWEEP_SLOTS[endpoint]:
            path = slot.split("/")[0]
            cases.append((f"sweep/{slot}/{label}", changed(base, path, wrap(value))))
    return cases


def build_corpus() -> list[Case]:
    builders = {
        "chat_completions": _chat_cases,
        "embeddings": _embedding_cases,
        "completions": _completion_cases,
        "responses": schema_cases.response_cases,
        "moderations": schema_cases.moderation_cases,
        "images": schema_cases.image_cases,
        "image_edits": schema_cases.image_edit_cases,
        "videos": schema_cases.video_cases,
    }
    return [
        Case(endpoint, name, body)
        for endpoint, build in builders.items()
        for name, body in [*build(), *_sweep(endpoint)]
    ]


CORPUS = build_corpus()

# Bodies on which our schema and the official one disagree on purpose: case id -> why.
DELIBERATE: dict[str, str] = {
    "embeddings:input/empty-string": (
        "CONTRACT: no empty string input; the spec's description says the input 'cannot be an "
        "empty string' but its schema has no minLength"
    ),
    "embeddings:input/array-of-one-empty-string": "as above, for each string of an array",
    "embeddings:input/array-with-empty-string": "as above, for each string of an array",
    "chat_completions:logit-bias/101": (
        "the spec's description gives the range -100..100; its schema only says integer"
    ),
    "chat_completions:logit-bias/-101": "as above",
    "completions:logit-bias/101": "as above",
    "chat_completions:assistant/content-null-alone": (
        "the spec's description: assistant content is 'Required unless tool_calls or "
        "function_call is specified'; its schema makes content optional and nullable"
    ),
    "chat_completions:assistant/empty": "as above",
    "completions:prompt/empty-array": (
        "an empty prompt list is rejected; the spec's array-of-strings form lacks the minItems: 1 "
        "that its token forms (and embeddings' input) have"
    ),
    "chat_completions:top-logprobs/null": (
        "the chat property says nullable: true, but the spec also ANDs in "
        "CreateModelResponseProperties.top_logprobs (integer, not nullable) via allOf, so the "
        "official schema rejects null; we follow the endpoint's own nullable declaration"
    ),
    "chat_completions:sweep/top_logprobs/null": "as chat_completions:top-logprobs/null",
    "embeddings:sweep/input/empty-string": "as embeddings:input/empty-string",
    "embeddings:sweep/input/item/empty-string": "as embeddings:input/empty-string",
    "embeddings:sweep/input/second-item/empty-string": "as embeddings:input/empty-string",
    "embeddings:sweep/input/array-of-empty-string": "as embeddings:input/empty-string",
    "completions:sweep/prompt/empty-array": "as completions:prompt/empty-array",
    "responses:input/missing": (
        "the spec requires no key at all; a request with neither input nor a stored prompt has "
        "nothing to answer, so input is required unless prompt is given"
    ),
    "responses:chat/messages-body": (
        "messages is a /v1/chat/completions field, which the spec lets through as an unknown key; "
        "batchkit says to use input instead (and input is missing)"
    ),
    "responses:chat/messages-and-input": "as responses:chat/messages-body",
    "responses:chat/response-format": (
        "response_format is a /v1/chat/completions field; /v1/responses takes text.format"
    ),
    "responses:valid/input-text-part": (
        "a message whose content is a list of parts matches both EasyInputMessage and "
        "InputMessage in the spec's oneOf, so the official schema rejects it; it is the shape "
        "OpenAI's own examples send"
    ),
    "responses:valid/input-image-part": "as responses:valid/input-text-part",
    "responses:valid/input-file-part": "as responses:valid/input-text-part",
    "responses:sweep/input/content/empty-array": (
        "as responses:valid/input-text-part: an empty list of parts matches both messages"
    ),
}


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def official_validators() -> dict[str, jsonschema.Draft202012Validator]:
    return {
        endpoint: jsonschema.Draft202012Validator(official_schema(endpoint))
        for endpoint in OFFICIAL
    }


@pytest.fixture(scope="module")
def our_validators() -> dict[str, jsonschema.Draft202012Validator]:
    return {
        endpoint: jsonschema.Draft202012Validator(our_schema(endpoint)) for endpoint in OFFICIAL
    }


@pytest.mark.parametrize("endpoint", sorted(OFFICIAL))
def test_converted_official_schema_is_valid_2020_12(endpoint: str) -> None:
    jsonschema.Draft202012Validator.check_schema(official_schema(endpoint))


def test_corpus_size_and_ids() -> None:
    ids = [case.id for case in CORPUS]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    per_endpoint = {e: sum(case.endpoint == e for case in CORPUS) for e in OFFICIAL}
    assert all(count >= CORPUS_FLOOR for count in per_endpoint.values()), per_endpoint
    # Both verdicts are well represented, for each endpoint.
    for endpoint in OFFICIAL:
        names = [case.name for case in CORPUS if case.endpoint == endpoint]
        assert sum(n.startswith("valid/") for n in names) >= 15, endpoint
        assert sum(not n.startswith("valid/") for n in names) >= 100, endpoint


def test_deliberate_disagreements_are_in_the_corpus() -> None:
    assert set(DELIBERATE) <= {case.id for case in CORPUS}


def test_valid_cases_are_valid_for_us(our_validators: dict[str, Any]) -> None:
    """The corpus names its valid bodies "valid/...": they must pass our schema."""
    failures = [
        case.id
        for case in CORPUS
        if case.name.startswith("valid/") and not our_validators[case.endpoint].is_valid(case.body)
    ]
    assert failures == []


@pytest.mark.parametrize("endpoint", sorted(OFFICIAL))
def test_batchkit_agrees_with_the_official_schema_but_where_deliberate(
    endpoint: str,
    our_validators: dict[str, jsonschema.Draft202012Validator],
    official_validators: dict[str, jsonschema.Draft202012Validator],
) -> None:
    """Each body judged by the official schema and by batchkit: the engine its validator runs
    on every line, and the one that explains an invalid line, which must agree as well."""
    disagree, engines_differ = set(), []
    for case in (case for case in CORPUS if case.endpoint == endpoint):
        ours = schemas.is_valid(f"{endpoint}.json", case.body)
        if our_validators[endpoint].is_valid(case.body) != ours:
            engines_differ.append(case.id)
        if ours != official_validators[endpoint].is_valid(case.body):
            disagree.add(case.id)
    assert engines_differ == []
    deliberate = {case_id for case_id in DELIBERATE if case_id.startswith(f"{endpoint}:")}
    assert sorted(disagree - deliberate) == [], "disagreements not listed in DELIBERATE"
    assert sorted(deliberate - disagree) == [], "listed in DELIBERATE but both agree"
