"""File limits and provider profiles: data, not logic.

A provider is one :class:`Profile` entry in :data:`PROFILES`.  Adding one (or correcting a
limit when a provider changes it) is an edit here and nowhere else.  The facts, and the
page each one comes from, are in docs/providers.md.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Literal

from batchkit.errors import UsageError

MIB = 1024 * 1024

#: The day the facts below (each profile's file limits, base URL, API paths and key variable)
#: were last checked against the providers' documentation (CONTRACT.md sections 1, 4, 5).
#: ``batchkit --version`` prints it; change it whenever those facts are checked again.
FACTS_CONFIRMED = "2026-11-25"


@dataclass(frozen=True)
class Limits:
    """What one batch file may hold.  Every field can be overridden on its own."""

    max_requests: int = 50_000
    #: 200 MiB: the exact number in the provider's own "file too large" message.
    max_bytes: int = 200 * MIB
    #: Embedding inputs summed over the whole file.
    max_embedding_inputs: int = 50_000
    #: Longer ids are accepted by OpenAI but refused by Anthropic, Together and others.
    long_custom_id: int = 64
    #: A file at or above this share of any limit gets a ``near_limit`` warning.
    near_limit_ratio: float = 0.9

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value <= 0:
                raise UsageError(f"limit {field.name} must be positive, got {value!r}")

    def replace(self, **overrides: int | float | None) -> Limits:
        """A copy with the given limits changed; ``None`` values are ignored."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


#: The endpoints of OpenAI's batch API (``CreateBatchRequest.endpoint`` in the official spec).
OPENAI_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
#: The three endpoints every OpenAI-style batch server has served since the start.
CLASSIC_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions")

#: How the key is sent: ``Authorization: Bearer KEY`` (most), or Azure's ``api-key: KEY``.
AuthScheme = Literal["bearer", "api-key"]


@dataclass(frozen=True)
class Profile:
    """A provider: its file limits, where and how its Files and Batches APIs live, and what it
    serves (endpoints, completion windows, options).  docs/providers.md says where each fact
    comes from.

    ``base_url`` is ``None`` where every account has its own host (Azure): then the user
    must give one (``base_url_example`` shows its shape).  Paths are joined to the base URL as
    they are.
    """

    name: str
    limits: Limits
    base_url: str | None
    files_path: str
    batches_path: str
    api_key_env: str
    description: str
    #: The batch endpoints the provider serves; a file for another is refused before upload.
    endpoints: tuple[str, ...] = CLASSIC_ENDPOINTS
    #: The ``completion_window`` values the provider accepts; the first is the default.
    completion_windows: tuple[str, ...] = ("24h",)
    #: Whether the create request may carry OpenAI's ``output_expires_after``.
    output_expires_after: bool = False
    auth: AuthScheme = "bearer"
    #: False for a server that needs no key (llama-stack run locally): then none is sent.
    key_required: bool = True
    base_url_example: str | None = None
    #: Where a finished batch's result files come from.  ``None``: by the batch's
    #: ``output_file_id`` and ``error_file_id``, from ``{files_path}/{id}/content``.  A path:
    #: from ``{batches_path}/{batch_id}{results_path}``, the output file as it is, the error
    #: file with the query parameter ``{results_errors_param}=errors``.
    results_path: str | None = None
    #: The name of the query parameter whose value ``errors`` selects the error file on
    #: ``results_path``.  orq's reference ("Download batch results") documents the values
    #: (``output``, the default, and ``errors``) but its stored text does not show the name:
    #: ``type`` is UNCONFIRMED (docs/providers.md); correct it here.
    results_errors_param: str = "type"
    #: The account's enqueued-token limit per model, when known: a file with more prompt
    #: tokens is refused before upload.  Unset for every shipped profile (it depends on the
    #: account's tier); ``--max-enqueued-tokens`` or ``BATCHKIT_MAX_ENQUEUED_TOKENS`` set it.
    max_enqueued_tokens: int | None = None

    @property
    def default_completion_window(self) -> str:
        return self.completion_windows[0]

    def serves(self, endpoint: str) -> bool:
        return endpoint in self.endpoints


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="orq",
            limits=Limits(),
            base_url="https://api.orq.ai",
            files_path="/v2/files",
            batches_path="/v3/router/batches",
            api_key_env="ORQ_API_KEY",
            description="orq.ai's router API, /v3/router/batches (the default)",
            endpoints=(
                "/v1/responses",
                "/v1/chat/completions",
                "/v1/embeddings",
                "/v1/completions",
                "/v1/moderations",
            ),
            output_expires_after=True,
            results_path="/results",
        ),
        Profile(
            name="orq-v2",
            limits=Limits(),
            base_url="https://api.orq.ai",
            files_path="/v2/files",
            batches_path="/v2/proxy/batch",
            api_key_env="ORQ_API_KEY",
            description="orq.ai's reference-page API, /v2/proxy/batch",
        ),
        Profile(
            name="openai",
            limits=Limits(),
            base_url="https://api.openai.com/v1",
            files_path="/files",
            batches_path="/batches",
            api_key_env="OPENAI_API_KEY",
            description="OpenAI, or any OpenAI-compatible service by its --base-url",
            endpoints=OPENAI_ENDPOINTS,
            output_expires_after=True,
        ),
        Profile(
            name="azure",
            limits=Limits(max_requests=100_000),
            base_url=None,
            files_path="/files",
            batches_path="/batches",
            api_key_env="AZURE_OPENAI_API_KEY",
            description="Azure OpenAI: key in the api-key header, your resource's --base-url",
            endpoints=OPENAI_ENDPOINTS,
            auth="api-key",
            base_url_example="https://RESOURCE.openai.azure.com/openai/v1",
        ),
        Profile(
            name="llama-stack",
            limits=Limits(),
            base_url="http://localhost:8321/v1",
            files_path="/files",
            batches_path="/batches",
            api_key_env="LLAMA_STACK_API_KEY",
            description="a llama-stack server you run (no key needed)",
            key_required=False,
        ),
    )
}

DEFAULT_PROFILE = "orq"
PROFILE_ENV = "BATCHKIT_PROFILE"

#: Names that were profiles once, and what to use now.
RETIRED_PROFILES = {
    "orq-router": "its API is now the default profile 'orq' (/v3/router/batches)",
    "together": "Together's batch lines are {custom_id, body}, not OpenAI's; it is not "
    "supported (see docs/providers.md)",
    "groq": "its limits could not be confirmed from Groq's documentation; use "
    "--profile openai --base-url https://api.groq.com/openai/v1 (see docs/providers.md)",
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``; a UsageError lists the known ones.

    ``None`` means "not given": then ``BATCHKIT_PROFILE`` (an empty one counts as unset), then
    the default (``orq``).  This is the one place the profile setting is resolved, so an unknown
    name is reported with the value actually used and where it came from, and a retired name
    with what replaced it.
    """
    if name is not None and not name.strip():
        raise UsageError("the profile name is empty: give one of " + _known_profiles())
    source = ""
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or None
        source = f" (from {PROFILE_ENV})" if name else ""
    chosen = name or DEFAULT_PROFILE
    key = chosen.strip().lower()
    try:
        return PROFILES[key]
    except KeyError:
        retired = RETIRED_PROFILES.get(key)
        why = f" ({retired})" if retired else ""
        raise UsageError(
            f"unknown profile {chosen!r}{source}{why}: choose one of {_known_profiles()}"
        ) from None


def _known_profiles() -> str:
    return ", ".join(sorted(PROFILES))
