"""The objects the Files and Batches APIs answer: a batch, its counts and errors, a file.

Each is read leniently (providers add fields, send nulls and numbers as strings), keeps the
server's whole answer in ``raw``, and needs nothing but its JSON: the CLI, :mod:`batchkit.submit`
and :mod:`batchkit.collect` use them without knowing how they were fetched
(:class:`batchkit.client.Client` does that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batchkit.errors import ApiError, UsageError
from batchkit.json_values import as_dict, as_int, as_str, snippet

__all__ = [
    "TERMINAL_STATUSES",
    "Batch",
    "BatchError",
    "BatchNotFinishedError",
    "DownloadedResults",
    "FileObject",
    "RequestCounts",
]

#: A batch in one of these states will not change any more.
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0

    @classmethod
    def from_json(cls, data: Any) -> RequestCounts:
        data = as_dict(data)
        return cls(
            total=as_int(data.get("total")) or 0,
            completed=as_int(data.get("completed")) or 0,
            failed=as_int(data.get("failed")) or 0,
        )


@dataclass
class BatchError:
    """One entry of a batch's ``errors.data``: why the server refused (part of) the file."""

    code: str | None
    message: str | None
    param: str | None
    line: int | None

    @classmethod
    def from_json(cls, data: Any) -> BatchError:
        data = as_dict(data)
        return cls(
            code=as_str(data.get("code")),
            message=as_str(data.get("message")),
            param=as_str(data.get("param")),
            line=as_int(data.get("line")),
        )


@dataclass
class Batch:
    """A batch as the server described it.  ``raw`` keeps every field, known or not."""

    id: str
    status: str
    endpoint: str | None = None
    input_file_id: str | None = None
    completion_window: str | None = None
    created_at: int | None = None
    request_counts: RequestCounts = field(default_factory=RequestCounts)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[BatchError] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Any) -> Batch:
        """Parse leniently: providers add fields and send nulls; only an ``id`` is required."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ApiError(f"the server's answer is not a batch object: {snippet(data)}")
        errors = data.get("errors")
        if isinstance(errors, dict):
            errors = errors.get("data")
        metadata = {
            str(key): value if isinstance(value, str) else orjson.dumps(value).decode()
            for key, value in as_dict(data.get("metadata")).items()
            if value is not None
        }
        return cls(
            id=data["id"],
            status=as_str(data.get("status")) or "unknown",
            endpoint=as_str(data.get("endpoint")),
            input_file_id=as_str(data.get("input_file_id")),
            completion_window=as_str(data.get("completion_window")),
            created_at=as_int(data.get("created_at")),
            request_counts=RequestCounts.from_json(data.get("request_counts")),
            output_file_id=as_str(data.get("output_file_id")),
            error_file_id=as_str(data.get("error_file_id")),
            errors=[BatchError.from_json(item) for item in errors or [] if isinstance(item, dict)],
            metadata=metadata,
            raw=data,
        )


@dataclass
class FileObject:
    """An uploaded file.  One type for orq's two upload answers and OpenAI's File object."""

    id: str
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    created_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> FileObject:
        """Accept ``{"file": {"file_id", "file_name"...}}``, ``{"_id"...}`` and ``{"id"...}``."""
        outer = as_dict(data)
        inner = outer["file"] if isinstance(outer.get("file"), dict) else outer
        file_id = next(
            (inner[key] for key in ("id", "file_id", "_id") if isinstance(inner.get(key), str)),
            None,
        )
        if file_id is None:
            raise ApiError(f"the server's upload answer has no file id: {snippet(data)}")
        return cls(
            id=file_id,
            filename=as_str(inner.get("filename", inner.get("file_name"))),
            bytes=as_int(inner.get("bytes")),
            purpose=as_str(inner.get("purpose")),
            created_at=as_int(inner.get("created_at")),
            raw=outer,
        )


@dataclass(frozen=True)
class DownloadedResults:
    """Where :meth:`~batchkit.client.Client.download_results` saved a batch's files.

    ``None``: the batch has no such file.
    """

    batch: Batch
    output: Path | None
    errors: Path | None


class BatchNotFinishedError(UsageError):
    """The batch has not ended, so its result files do not exist yet (exit 2).

    ``batch`` is the batch as last seen, so that the caller can show its status or wait.
    """

    def __init__(self, batch: Batch) -> None:
        counts = batch.request_counts
        super().__init__(
            f"batch {batch.id} has not finished: it is {batch.status} "
            f"({counts.completed + counts.failed:,}/{counts.total:,} requests), so its results "
            f"are not ready; wait until it ends (batchkit wait {batch.id}) and try again"
        )
        self.batch = batch
