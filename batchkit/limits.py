"""File limits and provider profiles: data, not logic.

A provider is one :class:`Profile` entry in :data:`PROFILES`.  Adding one (or correcting a
limit when a provider changes it) is an edit here and nowhere else.  The numbers come from
CONTRACT.md section 1; the API paths from sections 4 and 5.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Profile:
    """A provider: its file limits and where and how its Files and Batches APIs live.

    ``base_url`` is ``None`` where every account has its own host (Azure): then the user
    must give one.  Paths are joined to the base URL as they are.
    """

    name: str
    limits: Limits
    base_url: str | None
    files_path: str
    batches_path: str
    api_key_env: str
    description: str
    #: Where a finished batch's result files come from.  ``None``: by the batch's
    #: ``output_file_id`` and ``error_file_id``, from ``{files_path}/{id}/content``.  A path:
    #: from ``{batches_path}/{batch_id}{results_path}``, the output file as it is, the error
    #: file with the query parameter ``{results_errors_param}=errors``.
    results_path: str | None = None
    #: The name of the query parameter whose value ``errors`` selects the error file on
    #: ``results_path``.  orq's reference documents the values (``output``, ``errors``), but
    #: we did not find the name: ``type`` is a guess, UNCONFIRMED; correct it here.
    results_errors_param: str = "type"


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="orq",
            limits=Limits(),
            base_url="https://api.orq.ai",
            files_path="/v2/files",
            batches_path="/v2/proxy/batch",
            api_key_env="ORQ_API_KEY",
            description="orq.ai (the default)",
        ),
        Profile(
            name="orq-router",
            limits=Limits(),
            base_url="https://api.orq.ai",
            files_path="/v2/files",
            batches_path="/v3/router/batches",
            api_key_env="ORQ_API_KEY",
            description="orq.ai's newer router batch API",
            results_path="/results",
        ),
        Profile(
            name="openai",
            limits=Limits(),
            base_url="https://api.openai.com/v1",
            files_path="/files",
            batches_path="/batches",
            api_key_env="OPENAI_API_KEY",
            description="OpenAI, or any OpenAI-compatible service by its --base-url",
        ),
        Profile(
            name="azure",
            limits=Limits(max_requests=100_000),
            base_url=None,
            files_path="/files",
            batches_path="/batches",
            api_key_env="AZURE_OPENAI_API_KEY",
            description="Azure OpenAI (give your resource's --base-url, ending in /openai/v1)",
        ),
        Profile(
            name="together",
            limits=Limits(max_bytes=100 * MIB),
            base_url="https://api.together.xyz/v1",
            files_path="/files",
            batches_path="/batches",
            api_key_env="TOGETHER_API_KEY",
            description="Together AI",
        ),
        Profile(
            name="groq",
            limits=Limits(),
            base_url="https://api.groq.com/openai/v1",
            files_path="/files",
            batches_path="/batches",
            api_key_env="GROQ_API_KEY",
            description="Groq",
        ),
    )
}

DEFAULT_PROFILE = "orq"
PROFILE_ENV = "BATCHKIT_PROFILE"


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``; a UsageError lists the known ones.

    ``None`` means "not given": then ``BATCHKIT_PROFILE`` (an empty one counts as unset), then
    the default (``orq``).  This is the one place the profile setting is resolved, so an unknown
    name is reported with the value actually used and where it came from.
    """
    if name is not None and not name.strip():
        raise UsageError("the profile name is empty: give one of " + _known_profiles())
    source = ""
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or None
        source = f" (from {PROFILE_ENV})" if name else ""
    chosen = name or DEFAULT_PROFILE
    try:
        return PROFILES[chosen.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown profile {chosen!r}{source}: choose one of {_known_profiles()}"
        ) from None


def _known_profiles() -> str:
    return ", ".join(sorted(PROFILES))
