"""What a build reports: the files it wrote and the problems of single requests.

Apart from the builder so that whoever only reads a build's outcome (the CLI's reporters,
``--fix``, an input reader that hands over a bad item) need not know how files are written.
:class:`BuildResult` and :class:`OutputFile` are the fields of ``batchkit build --format
json``; :class:`RequestIssue`, :class:`InvalidRequestError` and :class:`InvalidItem` name one
request by its place in the input (:func:`describe_request`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchkit import schemas
from batchkit.errors import InvalidInputError
from batchkit.issues import Issue


class InvalidRequestError(InvalidInputError):
    """One request breaks a rule; ``index`` is its 0-based position in the input."""

    def __init__(self, index: int, custom_id: Any, issues: list[Issue]) -> None:
        self.index = index
        self.custom_id = custom_id
        self.issues = issues
        problems = "; ".join(f"{issue.code}: {issue.message}" for issue in issues)
        super().__init__(f"{describe_request(index, custom_id)} is invalid: {problems}")


def describe_request(index: int, custom_id: Any) -> str:
    """``request at index 4 (custom_id "request-000005")``."""
    if custom_id is None:
        return f"request at index {index}"
    return f"request at index {index} (custom_id {schemas.show(custom_id)})"


@dataclass(frozen=True)
class InvalidItem:
    """An input item its reader already knows to be bad (an empty CSV cell, a line not JSON).

    A reader yields one in the item's place, so that the build reports it as it reports any
    invalid request: with ``on_invalid="raise"`` the error, with ``"skip"`` a row of the
    rejects file (``request`` is what the reader could keep of the item, or ``None``).
    """

    issues: tuple[Issue, ...]
    request: Any = None


@dataclass(frozen=True)
class OutputFile:
    """One file of a build and what it holds."""

    path: Path
    requests: int
    bytes: int
    embedding_inputs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "requests": self.requests,
            "bytes": self.bytes,
            "embedding_inputs": self.embedding_inputs,
        }


@dataclass(frozen=True)
class RequestIssue:
    """An issue of one input item: a warning of a written request, or why one was rejected."""

    index: int
    custom_id: Any
    issue: Issue

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "custom_id": self.custom_id,
            "code": self.issue.code,
            "param": self.issue.param,
            "message": self.issue.message,
        }


@dataclass
class BuildResult:
    """What :func:`build_batch` wrote: the fields of ``batchkit build --format json``."""

    outputs: list[OutputFile]
    endpoint: str
    model: str | None
    rejected: int = 0
    rejects_file: Path | None = None
    #: Warnings of written requests (e.g. ``long_custom_id``), at most 1,000 kept.
    warnings: list[RequestIssue] = field(default_factory=list)
    warnings_total: int = 0

    @property
    def files(self) -> list[Path]:
        return [output.path for output in self.outputs]

    @property
    def counts(self) -> list[int]:
        """Requests per file, in file order."""
        return [output.requests for output in self.outputs]

    @property
    def requests(self) -> int:
        return sum(self.counts)

    @property
    def bytes(self) -> int:
        return sum(output.bytes for output in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [output.to_dict() for output in self.outputs],
            "requests": self.requests,
            "bytes": self.bytes,
            "endpoint": self.endpoint,
            "model": self.model,
            "rejected": self.rejected,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "warnings": [warning.to_dict() for warning in self.warnings],
            "warnings_total": self.warnings_total,
        }
