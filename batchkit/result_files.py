"""What a batch's results become: the results file, the retry file and the summary.

:func:`write_results` makes one pass over a join (:mod:`batchkit.results`): it writes each
result to the results file (JSONL, or CSV for people who open results in a spreadsheet),
counts it in the :class:`Summary`, and notes which input lines are worth sending again.
:func:`write_retry_file` then copies those lines from the input, byte for byte, so the retry
is the very requests that were sent (same custom_ids, same bodies).

Every file is written atomically (a temporary file renamed when complete): a failure leaves
no half-written results file behind.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from batchkit.atomic import atomic_writer
from batchkit.errors import UsageError
from batchkit.lines import LongLine, open_binary
from batchkit.results import STATUSES, Result, numbered_lines, should_retry

__all__ = [
    "CSV_COLUMNS",
    "Summary",
    "answer_text",
    "write_results",
    "write_retry_file",
]

PathLike = str | os.PathLike[str]

#: The flat columns of a CSV results file.
CSV_COLUMNS = (
    "custom_id",
    "status",
    "status_code",
    "answer",
    "error_code",
    "error_message",
    "input_tokens",
    "output_tokens",
    "line",
)


@dataclass
class Summary:
    """Counts by status, the most frequent errors with an example each, and token totals."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    usage: Counter[str] = field(default_factory=Counter)
    #: How many requests went to the retry file.
    retry: int = 0

    def add(self, result: Result) -> None:
        self.counts[result.status] += 1
        if result.error is not None:
            key = result.error.code or result.error.message or "error"
            self.errors[key] += 1
            self.examples.setdefault(key, result.custom_id)
        for name, value in (result.usage or {}).items():
            if type(value) is int:
                self.usage[name] += value

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def all_succeeded(self) -> bool:
        return self.counts["succeeded"] == self.total

    def top_errors(self, limit: int = 5) -> list[tuple[str, int, str]]:
        """``(code or message, count, an example custom_id)``, most frequent first."""
        return [(key, n, self.examples[key]) for key, n in self.errors.most_common(limit)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": {status: self.counts[status] for status in STATUSES},
            "top_errors": [
                {"error": key, "count": n, "example": example}
                for key, n, example in self.top_errors()
            ],
            "usage": dict(self.usage),
            "retry": self.retry,
        }


def answer_text(body: Any) -> str | None:
    """The answer a person wants to see in a spreadsheet cell, from a response body.

    Chat: the first choice's message content; completions: the first choice's text;
    responses: ``output_text`` or the text parts of ``output``; embeddings: the first
    vector's length (``"1536 dimensions"``).  ``None`` when the body has none of these.
    """
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
        if isinstance(first.get("text"), str):
            return str(first["text"])
    if isinstance(body.get("output_text"), str):
        return str(body["output_text"])
    texts = [
        part["text"]
        for item in body.get("output") or []
        if isinstance(item, dict)
        for part in item.get("content") or []
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    if texts:
        return "".join(texts)
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        vector = data[0].get("embedding")
        if isinstance(vector, list):
            return f"{len(vector)} dimensions"
    return None


def _tokens(usage: dict[str, Any] | None) -> tuple[Any, Any]:
    """(input, output) tokens whatever the endpoint calls them."""
    if not usage:
        return None, None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    return prompt, completion


def _csv_row(result: Result) -> list[Any]:
    error = result.error
    prompt, completion = _tokens(result.usage)
    return [
        result.custom_id,
        result.status,
        result.status_code,
        answer_text(result.body),
        error.code if error else None,
        error.message if error else None,
        prompt,
        completion,
        result.line,
    ]


def results_format(path: PathLike) -> str:
    """``csv`` for a ``.csv`` path, ``jsonl`` for ``.jsonl``; anything else is a UsageError."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    raise UsageError(
        f"{path}: the results file must end in .jsonl (one JSON object per request) or .csv "
        "(flat columns for a spreadsheet)"
    )


def write_results(
    results: Iterable[Result],
    dest: PathLike,
    *,
    retry_all: bool = False,
) -> tuple[Summary, list[int]]:
    """Write ``results`` to ``dest`` (JSONL or CSV by its extension), atomically.

    Returns the summary and the input lines worth retrying (see
    :func:`~batchkit.results.should_retry`), in input order.
    """
    kind = results_format(dest)
    summary = Summary()
    retry_lines: list[int] = []
    with atomic_writer(dest) as out:
        if kind == "csv":
            _write_csv(results, out, summary, retry_lines, retry_all)
        else:
            for result in results:
                out.write(orjson.dumps(result.to_dict(), option=orjson.OPT_APPEND_NEWLINE))
                _account(result, summary, retry_lines, retry_all)
    summary.retry = len(retry_lines)
    return summary, retry_lines


def _write_csv(
    results: Iterable[Result],
    out: BinaryIO,
    summary: Summary,
    retry_lines: list[int],
    retry_all: bool,
) -> None:
    # utf-8-sig: spreadsheet programs read the file as UTF-8 only with the mark.
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for result in results:
        writer.writerow(_csv_row(result))
        _account(result, summary, retry_lines, retry_all)
    text.flush()
    text.detach()  # the atomic writer closes the file itself


def _account(result: Result, summary: Summary, retry_lines: list[int], retry_all: bool) -> None:
    summary.add(result)
    if result.line is not None and should_retry(result, retry_all=retry_all):
        retry_lines.append(result.line)


def write_retry_file(input: PathLike, lines: Iterable[int], dest: PathLike) -> int:
    """Copy the input's ``lines`` (1-based numbers), byte for byte, to ``dest``; their count.

    Nothing is written (and an existing ``dest`` is left alone) when ``lines`` is empty.  The
    copy is atomic.  A last line without its newline gets one, so that the file stays JSONL.
    """
    wanted = set(lines)
    if not wanted:
        return 0
    written = 0
    with open_binary(input, "the input file") as source, atomic_writer(dest) as out:
        for number, raw in numbered_lines(source):
            if number in wanted and not isinstance(raw, LongLine):
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                written += 1
    return written
