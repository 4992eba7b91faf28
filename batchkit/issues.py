"""What a check finds and how a file's verdict holds it: :class:`Issue` and :class:`FileReport`.

Apart from the validator so that everything that reports a problem (the validator, the
builder, ``--fix``, the CLI's reporters) shares one type without importing the checks
themselves.  The list of issues is capped (:data:`DEFAULT_MAX_ISSUES`); the counts never are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from batchkit.limits import Limits

Severity = Literal["error", "warning"]

#: How many issues of each severity a report lists by default; the totals count them all.
DEFAULT_MAX_ISSUES = 1000


@dataclass(frozen=True)
class Issue:
    """One problem.  ``line`` is 1-based, or ``None`` for a file-level problem."""

    line: int | None
    code: str
    param: str | None
    message: str
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "param": self.param, "message": self.message}


@dataclass
class FileReport:
    """The verdict on one file: the fields of ``batchkit validate --format json``."""

    path: str
    endpoint: str | None
    model: str | None
    requests: int
    bytes: int
    embedding_inputs: int
    errors: list[Issue]
    warnings: list[Issue]
    errors_total: int
    warnings_total: int
    limits: Limits

    @property
    def valid(self) -> bool:
        return self.errors_total == 0

    def passed(self, strict: bool = False) -> bool:
        """Valid, and with ``strict`` also free of warnings."""
        return self.valid and not (strict and self.warnings_total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "valid": self.valid,
            "endpoint": self.endpoint,
            "model": self.model,
            "requests": self.requests,
            "bytes": self.bytes,
            "embedding_inputs": self.embedding_inputs,
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "errors_total": self.errors_total,
            "warnings_total": self.warnings_total,
        }


@dataclass
class Collected:
    """Issues kept (up to ``cap`` of each severity) and counted (all of them).

    The cap is for the per-line issues, which can run into the thousands; the few file-level
    ones (limits, an empty file) are always kept, since they are often the verdict itself.
    """

    cap: int
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    errors_total: int = 0
    warnings_total: int = 0

    def add(self, issue: Issue) -> None:
        if issue.severity == "error":
            self.errors_total += 1
            kept = self.errors
        else:
            self.warnings_total += 1
            kept = self.warnings
        if issue.line is None or len(kept) < self.cap:
            kept.append(issue)

    def add_all(self, other: Collected) -> None:
        """Add what ``other`` kept and counted, as if each of its issues were added here in turn.

        Those it did not keep are past its cap, so past this one's too: only counted.
        """
        for issue in (*other.errors, *other.warnings):
            self.add(issue)
        self.errors_total += other.errors_total - len(other.errors)
        self.warnings_total += other.warnings_total - len(other.warnings)
