"""batchkit: build, validate and submit JSONL batch files for OpenAI-style Batch APIs.

The public API is what ``__all__`` lists.  Names are imported on first use, so that
``import batchkit`` (and every CLI start) stays fast and does not load the HTTP stack
unless a command needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "BatchkitError": "batchkit.errors",
    "InvalidInputError": "batchkit.errors",
    "UsageError": "batchkit.errors",
    "ApiError": "batchkit.errors",
    "AuthError": "batchkit.errors",
    "NetworkError": "batchkit.errors",
    "Limits": "batchkit.limits",
    "Profile": "batchkit.limits",
    "PROFILES": "batchkit.limits",
    "get_profile": "batchkit.limits",
    "validate_file": "batchkit.validate",
    "FileReport": "batchkit.validate",
    "Issue": "batchkit.validate",
    "build_batch": "batchkit.build",
    "BuildResult": "batchkit.build",
    "Client": "batchkit.client",
    "Batch": "batchkit.batches",
    "FileObject": "batchkit.batches",
    "submit": "batchkit.submit",
    "SubmitResult": "batchkit.submit",
    "wait_for_batch": "batchkit.submit",
    "download_results": "batchkit.collect",
    "collect_results": "batchkit.collect",
    "CollectedResults": "batchkit.collect",
    "iter_results": "batchkit.results",
    "Result": "batchkit.results",
    "should_retry": "batchkit.results",
    "write_results": "batchkit.result_files",
    "write_retry_file": "batchkit.result_files",
    "run_job": "batchkit.run",
    "cancel_job": "batchkit.run",
    "RunResult": "batchkit.run",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from batchkit.errors import (
        ApiError,
        AuthError,
        BatchkitError,
        InvalidInputError,
        NetworkError,
        UsageError,
    )
    from batchkit.limits import PROFILES, Limits, Profile, get_profile
    from batchkit.validate import FileReport, Issue, validate_file


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'batchkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
