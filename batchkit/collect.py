"""Collect a finished batch's results: download its files, join them, write what users read.

One function, :func:`collect_results`, is what ``batchkit results`` and ``batchkit submit
--wait -o`` do: the server's output and error files are downloaded (streamed, to a temporary
directory unless the caller keeps them), joined to the input when it is given
(:mod:`batchkit.results`), and written as the results file and, when asked, the retry file
(:mod:`batchkit.result_files`).  Everything that can be refused without the network (a
results file name, a retry file without the input) is refused first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchkit.batches import Batch, BatchNotFinishedError, DownloadedResults
from batchkit.client import Client
from batchkit.errors import BatchkitError, UsageError
from batchkit.result_files import Summary, results_format, write_results, write_retry_file
from batchkit.results import JoinProblem, iter_results

__all__ = ["CollectedResults", "check_collect_options", "collect_results", "download_results"]

PathLike = str | os.PathLike[str]


@dataclass
class CollectedResults:
    """What :func:`collect_results` wrote, and what it found on the way."""

    batch: Batch
    summary: Summary
    results_file: Path
    #: The retry file, or ``None`` when nothing needed a retry (or none was asked for).
    retry_file: Path | None
    #: True when a retry file from an earlier run was removed because nothing needs a retry.
    removed_stale_retry_file: bool
    #: The server's own files, when the caller kept them (``keep_dir``).
    downloaded: DownloadedResults | None
    problems: list[JoinProblem] = field(default_factory=list)

    @property
    def all_succeeded(self) -> bool:
        return self.summary.all_succeeded and self.batch.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        kept = self.downloaded
        return {
            "batch_id": self.batch.id,
            "status": self.batch.status,
            "results_file": str(self.results_file),
            "retry_file": str(self.retry_file) if self.retry_file else None,
            "summary": self.summary.to_dict(),
            "problems": [problem.to_dict() for problem in self.problems],
            "downloaded": {
                "output": str(kept.output) if kept and kept.output else None,
                "errors": str(kept.errors) if kept and kept.errors else None,
            },
        }


def download_results(
    batch: Batch | str, directory: PathLike, *, client: Client | None = None
) -> DownloadedResults:
    """Save a finished batch's output and error files in ``directory``, as the server gave
    them (:meth:`Client.download_results`); without ``client``, one from the environment."""
    if client is not None:
        return client.download_results(batch, directory)
    with Client.from_settings() as owned:
        return owned.download_results(batch, directory)


def check_collect_options(
    dest: PathLike,
    *,
    input: PathLike | None = None,
    retry_file: PathLike | None = None,
    include_request: bool = False,
) -> None:
    """Refuse, before any request, what :func:`collect_results` could not do."""
    results_format(dest)
    if input is None and retry_file is not None:
        raise UsageError(
            "a retry file is made of the input's own lines: give the batch file that was "
            "submitted with --input"
        )
    if input is None and include_request:
        raise UsageError("--include-request takes each request from the input: give --input")
    if input is not None and not Path(input).is_file():
        raise UsageError(f"{input}: no such file (the input)")
    if retry_file is not None and Path(retry_file).suffix != ".jsonl":
        raise UsageError(f"{retry_file}: the retry file must end in .jsonl (it is a batch file)")


def collect_results(
    client: Client,
    batch: Batch | str,
    dest: PathLike,
    *,
    input: PathLike | None = None,
    retry_file: PathLike | None = None,
    retry_all: bool = False,
    include_request: bool = False,
    keep_dir: PathLike | None = None,
) -> CollectedResults:
    """Download ``batch``'s results, join them to ``input`` and write ``dest``.

    - ``dest``: ``.jsonl`` (one object per request) or ``.csv`` (flat columns).
    - ``input``: the batch file that was submitted.  With it, results come in its order, every
      request exactly once, and requests neither file mentions are ``missing``.
    - ``retry_file``: the input's lines worth sending again (see
      :func:`~batchkit.results.should_retry`; ``retry_all`` adds every failure), byte for
      byte.  When nothing needs a retry none is written, and one left by an earlier run at
      that path is removed, so that a retry never sends requests that succeeded.
    - ``keep_dir``: also keep the server's files there (else a temporary directory is used).

    A batch that has not ended raises :class:`~batchkit.client.BatchNotFinishedError`.
    """
    check_collect_options(dest, input=input, retry_file=retry_file, include_request=include_request)
    if isinstance(batch, str):
        batch = client.retrieve_batch(batch)
    if not batch.is_terminal:
        raise BatchNotFinishedError(batch)
    with contextlib.ExitStack() as stack:
        directory = keep_dir or stack.enter_context(_download_directory(Path(dest)))
        downloaded = client.download_results(batch, directory)
        join = stack.enter_context(
            iter_results(
                downloaded.output, downloaded.errors, input, include_request=include_request
            )
        )
        summary, retry_lines = write_results(join, dest, retry_all=retry_all)
        problems = join.problems
    written: Path | None = None
    removed = False
    if retry_file is not None and input is not None:
        if write_retry_file(input, retry_lines, retry_file):
            written = Path(retry_file)
        elif os.path.lexists(retry_file):
            Path(retry_file).unlink()
            removed = True
    return CollectedResults(
        batch=batch,
        summary=summary,
        results_file=Path(dest),
        retry_file=written,
        removed_stale_retry_file=removed,
        downloaded=downloaded if keep_dir is not None else None,
        problems=problems,
    )


def _download_directory(dest: Path) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory beside the results file, so that the downloads (200 MB and more)
    go where the user has room, and are removed however the command ends."""
    beside = dest.absolute().parent
    try:
        beside.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=".batchkit-download-", dir=beside)
    except OSError as error:
        raise BatchkitError(f"cannot write in {beside}: {error.strerror or error}") from None
