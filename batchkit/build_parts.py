"""The pieces of a build's split: one output file (:class:`Part`), the requests waiting to
be checked together (:class:`Pending`), and the split by prompt tokens (:class:`TokenSplit`).

Apart from :mod:`batchkit.build` so that the builder reads as the order of its work, and the
bookkeeping of what a file holds (each limit's fill, see :func:`~batchkit.file_limits.fill`)
is in one place.
"""

from __future__ import annotations

from typing import Any

from batchkit.file_limits import fill
from batchkit.limits import Limits
from batchkit.outputs import OutputSet, TempWriter
from batchkit.tokens import PromptCounter
from batchkit.validate import Validator

__all__ = ["Part", "Pending", "TokenSplit"]


class TokenSplit:
    """The split by prompt tokens: the limit and the counter of each request's tokens."""

    def __init__(self, limit: int, encoding: str | None) -> None:
        self.limit = limit
        self.count = PromptCounter(encoding)


class Part:
    """One output file: its writer, its validator and what it holds so far."""

    def __init__(
        self, files: OutputSet, endpoint: str, limits: Limits, max_tokens: int | None = None
    ) -> None:
        self.writer = TempWriter(files)
        # A validator per file: its own set of ids never outgrows one file.
        self.validator = Validator(endpoint, limits)
        self.requests = 0
        self.bytes = 0
        self.embedding_inputs = 0
        self.tokens = 0
        ratio = limits.near_limit_ratio
        self._most_requests = fill(limits.max_requests, ratio)
        self._most_bytes = fill(limits.max_bytes, ratio)
        self._most_inputs = fill(limits.max_embedding_inputs, ratio)
        self._most_tokens = None if max_tokens is None else fill(max_tokens, ratio)

    def fits(self, nbytes: int, inputs: int, tokens: int = 0) -> bool:
        """Whether one more request keeps the file within the :func:`fill` of every limit.

        An empty file takes any request (the builder has checked it is within the limits
        themselves): a request over the fill gets a file of its own rather than none.
        """
        return not self.requests or (
            self.requests < self._most_requests
            and self.bytes + nbytes <= self._most_bytes
            and self.embedding_inputs + inputs <= self._most_inputs
            and (self._most_tokens is None or self.tokens + tokens <= self._most_tokens)
        )

    def write(self, line: bytes, inputs: int, tokens: int = 0) -> None:
        self.writer.write(line)
        self.count(len(line), inputs, tokens)

    def fits_all(self, count: int, nbytes: int, inputs: int) -> bool:
        """Whether ``count`` more requests (no tokens counted) each :meth:`fit` in turn."""
        return (
            self.requests > 0
            and self._most_tokens is None
            and self.requests + count <= self._most_requests
            and self.bytes + nbytes <= self._most_bytes
            and self.embedding_inputs + inputs <= self._most_inputs
        )

    def count(self, nbytes: int, inputs: int, tokens: int) -> None:
        """Count a request in the file (:meth:`write` it, or hold it in :class:`Pending`)."""
        self.requests += 1
        self.bytes += nbytes
        self.embedding_inputs += inputs
        self.tokens += tokens

    def totals(self) -> tuple[int, int, int, int]:
        return self.requests, self.bytes, self.embedding_inputs, self.tokens

    def restore(self, totals: tuple[int, int, int, int]) -> None:
        self.requests, self.bytes, self.embedding_inputs, self.tokens = totals


class Pending:
    """Requests ready to be written to the current file once the validator has seen them.

    The validator answers for many ordinary requests in one call
    (:meth:`~batchkit.validate.Validator.check_records`), so a request that passed the
    build's own rules waits here, already counted in the file (so that the split is decided
    as if it were written), until enough wait (:data:`batchkit.build.PENDING`), the file
    changes or the build ends.
    """

    def __init__(self) -> None:
        self.indexes: list[int] = []
        self.records: list[dict[str, Any]] = []
        self.lines: list[bytes] = []
        self.sizes: list[tuple[int, int]] = []  # (embedding inputs, tokens)
        #: The file's totals before the first waiting request: restored if any is rejected.
        self.totals = (0, 0, 0, 0)
        #: How many may wait (the builder sets it): 1 where a request must be judged before
        #: the next is read.
        self.most = 1

    def clear(self) -> None:
        self.indexes.clear()
        self.records.clear()
        self.lines.clear()
        self.sizes.clear()
