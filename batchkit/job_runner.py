"""The loop of a ``batchkit run`` job: build, submit, poll, collect, resend, write.

:class:`JobRunner` is one run of a job whose file :func:`batchkit.run.run_job` has opened and
checked.  Each step it takes is a state change of the job file (:mod:`batchkit.job`),
committed before the next step, so that a run stopped anywhere is picked up by the next:

- **build** the input into shards, once (``build_batch``, exactly as ``batchkit build``);
- **submit** waiting attempts while there is room (``max_active``, a capacity hold, the
  enqueued-token budget), after looking for a batch whose create may have been lost;
- **poll** the running batches; an ended one is **collected** (downloaded once, joined) and
  its retryable requests become the next round's attempt;
- **finish**: the results file, every request once in input order, each with its last answer.

Refusals about capacity (``token_limit_exceeded``, a 429 on create) put a hold on
submitting (:class:`_CapacityHold`) instead of failing the job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batchkit.batches import Batch
from batchkit.build import InvalidRequestError, build_batch
from batchkit.client import Client
from batchkit.errors import ApiError, InvalidInputError
from batchkit.inputs import BuildOptions, read_requests
from batchkit.job import IN_FLIGHT_STATES, OPEN_STATES, Attempt, AttemptFile, JobFile, JobFileError
from batchkit.limits import Limits
from batchkit.result_files import Summary, write_results, write_retry_file
from batchkit.results import Result, ResultError, iter_results, should_retry
from batchkit.submit import HASH_KEY, check_profile_serves, file_sha256
from batchkit.token_files import count_file_tokens

__all__ = [
    "CAPACITY_ERRORS",
    "JOB_KEY",
    "JobRunner",
    "JobSettings",
    "Pacing",
    "RunEvent",
    "RunResult",
]

#: The metadata key that ties a batch to its job, shard, round and try.
JOB_KEY = "batchkit_job"
#: A batch that failed with one of these codes was refused for capacity, not content.
CAPACITY_ERRORS = frozenset({"token_limit_exceeded"})
#: How many pages of batches (of 100) are searched for a create that may have been lost.
_RECOVERY_PAGES = 5
#: The longest pause before trying again after a capacity refusal with no batch running.
_MAX_CAPACITY_PAUSE = 600.0


@dataclass(frozen=True)
class RunEvent:
    """Something a job did that its user may want to see (``message`` says it in words)."""

    kind: str
    message: str
    shard: int | None = None
    round: int | None = None


@dataclass
class RunResult:
    """What :func:`batchkit.run.run_job` did and wrote."""

    results_file: Path
    job_file: Path
    summary: Summary
    shards: int
    #: Batches the job made, over all its runs (capacity refusals included).
    batches: int
    #: The highest round any shard reached.
    rounds: int
    #: Capacity refusals waited out (``token_limit_exceeded``, 429 on create).
    refusals: int
    rejected: int = 0
    rejects_file: Path | None = None
    cancelled: bool = False

    @property
    def all_succeeded(self) -> bool:
        return self.summary.all_succeeded and not self.cancelled

    def to_dict(self) -> dict[str, Any]:
        return {
            "results_file": str(self.results_file),
            "job_file": str(self.job_file),
            "shards": self.shards,
            "batches": self.batches,
            "rounds": self.rounds,
            "refusals": self.refusals,
            "rejected": self.rejected,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "cancelled": self.cancelled,
            "summary": self.summary.to_dict(),
        }


@dataclass(frozen=True)
class JobSettings:
    """What decides the job's requests and batches: fixed for the life of a job file."""

    endpoint: str | None
    model: str | None
    prompt_column: str | None
    system: str | None
    id_column: str | None
    skip_invalid: bool
    limits: dict[str, Any]
    metadata: dict[str, str]
    completion_window: str
    max_enqueued_tokens: int | None
    encoding: str | None
    api: dict[str, str]

    def as_json(self) -> str:
        return orjson.dumps(self.__dict__, option=orjson.OPT_SORT_KEYS).decode()

    def differences(self, stored: str) -> list[str]:
        old = orjson.loads(stored)
        return [name for name, value in self.__dict__.items() if old.get(name) != value]


@dataclass(frozen=True)
class Pacing:
    """How a run goes about its batches.  Unlike :class:`JobSettings`, these may change from
    one run of a job to the next (a resumed job may be given more rounds)."""

    max_active: int
    max_rounds: int
    poll_interval: float
    max_poll_interval: float


class JobRunner:
    """One run of a job: build if not built, then poll, collect and submit until done."""

    def __init__(
        self,
        store: JobFile,
        client: Client,
        limits: Limits,
        settings: JobSettings,
        inputs: Sequence[Path],
        workdir: Path,
        *,
        pacing: Pacing,
        on_event: Callable[[RunEvent], None] | None,
        progress: Callable[[int, int], None] | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.store = store
        self.client = client
        self.limits = limits
        self.settings = settings
        self.inputs = inputs
        self.workdir = workdir
        self.pacing = pacing
        self.on_event = on_event
        self.progress = progress
        self.sleep = sleep
        self.job_id = store.job_id
        #: After a capacity refusal: submit nothing until a batch of the job ends, or (with
        #: none running) until a pause ends.
        self._hold = _CapacityHold(pacing.poll_interval)

    # --- the loop --------------------------------------------------------------------------

    def run(self, output: Path) -> RunResult:
        if not self.store.shards():
            self._build()
        self._recover_creates()
        pacing = self.pacing
        delay = pacing.poll_interval
        while True:
            changed = self._step()
            self._report_progress()
            if not self._open_attempts():
                break
            delay = pacing.poll_interval if changed else min(delay * 1.5, pacing.max_poll_interval)
            self.sleep(min(delay, self._hold.remaining()) if self._hold.timed else delay)
        return self._finish(output)

    def _step(self) -> bool:
        """Poll the running batches, collect the ended ones, submit what may go: True when
        anything changed.  Submitting comes first and again after each collect, so that the
        slots of ended batches are filled while their results are still being read."""
        changed = False
        cancelled = self.store.cancelled
        for attempt in self.store.attempts(("active",)):
            batch = self.client.retrieve_batch(attempt.batch_id or "")
            if cancelled and not batch.is_terminal and batch.status != "cancelling":
                # made while `job cancel` was listing the batches to cancel
                batch = self.client.cancel_batch(batch.id)
            if batch.is_terminal:
                self._ended(attempt, batch)
                changed = True
            else:
                self.store.progressed(attempt, batch)
        submit = self._submit_more if not cancelled else lambda: False
        changed = submit() or changed
        for attempt in self.store.attempts(("ended", "downloaded")):
            self._collect(attempt)
            submit()
            changed = True
        return changed

    def _open_attempts(self) -> list[Attempt]:
        """What is left to do; after a ``job cancel``, nothing new is sent."""
        states: tuple[str, ...] = OPEN_STATES
        if self.store.cancelled:
            states = tuple(state for state in OPEN_STATES if state not in ("pending", "uploaded"))
        return self.store.attempts(states)

    # --- building --------------------------------------------------------------------------

    def _build(self) -> None:
        settings = self.settings
        options = BuildOptions(
            endpoint=settings.endpoint,
            model=settings.model,
            prompt_column=settings.prompt_column,
            system=settings.system,
            id_column=settings.id_column,
        )
        names = tuple(str(path) for path in self.inputs)
        endpoint, requests, items = read_requests(names, options, self.limits)
        shards = self.workdir / "round-1"
        try:
            built = build_batch(
                requests,
                endpoint=endpoint,
                output=shards / "shard.jsonl",
                model=settings.model,
                limits=self.limits,
                on_invalid="skip" if settings.skip_invalid else "raise",
                overwrite=True,
                max_tokens_per_file=settings.max_enqueued_tokens,
                encoding=settings.encoding,
            )
        except InvalidRequestError as error:
            raise InvalidInputError(f"{items.where}: {error}; nothing was sent") from None
        check_profile_serves(self.client.profile, endpoint=built.endpoint)
        recorded = [self._attempt_file(output.path, output.requests) for output in built.outputs]
        meta = {"endpoint": built.endpoint, "rejected": str(built.rejected)}
        if built.rejects_file is not None:
            meta["rejects_file"] = self._relative(built.rejects_file)
        self.store.add_shards(recorded, meta)
        self._tell(
            "built",
            f"built {built.requests:,} request(s) into {len(recorded)} shard(s)"
            + (f"; {built.rejected:,} rejected ({built.rejects_file})" if built.rejected else ""),
        )

    # --- submitting ------------------------------------------------------------------------

    def _submit_more(self) -> bool:
        """Submit waiting attempts, in order, while there is room: fewer than ``max_active``
        batches in flight, no capacity hold, and (with an enqueued-token limit) the in-flight
        batches' prompt tokens plus the next one's within the limit (the job has one model)."""
        submitted = False
        flying = self.store.attempts(IN_FLIGHT_STATES)
        in_flight, tokens = len(flying), sum(attempt.tokens or 0 for attempt in flying)
        limit = self.settings.max_enqueued_tokens
        for attempt in self.store.attempts(("pending", "uploaded")):
            if in_flight >= self.pacing.max_active or self._hold.holding():
                break
            if limit is not None and in_flight and tokens + (attempt.tokens or 0) > limit:
                break  # sent once an earlier batch of the job has finished
            if self._submit(attempt):
                in_flight += 1
                tokens += attempt.tokens or 0
                submitted = True
        return submitted

    def _submit(self, attempt: Attempt) -> bool:
        """Upload (unless done) and create; False when the server said "not now" (429)."""
        uploaded_earlier = attempt.state == "uploaded"
        try:
            if attempt.state == "pending":
                uploaded = self.client.upload_file(self._path(attempt.path))
                self.store.uploaded(attempt, uploaded.id)
                attempt = self.store.attempt(attempt.id)
            if self.store.cancelled:  # a `job cancel` since this step began
                return False
            self.store.creating(attempt)
            batch = self.client.create_batch(
                attempt.file_id or "",
                self.store.meta()["endpoint"],
                completion_window=self.settings.completion_window,
                metadata=self._metadata(attempt),
            )
        except ApiError as error:
            if error.status == 404 and uploaded_earlier:
                # The file uploaded by an earlier step is gone (files expire): upload again.
                self.store.upload_lost(self.store.attempt(attempt.id), str(error))
                return False
            if error.status != 429:
                raise
            reason = f"the server answered 429 ({error.message or error})"
            if attempt.state != "pending":
                self.store.create_refused(self.store.attempt(attempt.id), reason)
            else:
                self.store.event("refused", reason)
            self._refused(attempt, reason)
            return False
        self.store.created(attempt, batch)
        self._tell("created", f"{attempt.label}: batch {batch.id} created", attempt)
        return True

    def _metadata(self, attempt: Attempt) -> dict[str, str]:
        return {
            **self.settings.metadata,
            JOB_KEY: f"{self.job_id}/{attempt.key}",
            HASH_KEY: attempt.sha256,
        }

    def _recover_creates(self) -> None:
        """Attempts left ``creating`` by a run that was stopped: their create may have reached
        the server.  Found by the job metadata (or the uploaded file), the batch is adopted;
        otherwise the create is sent again, from the same upload."""
        pending = self.store.attempts(("creating",))
        if not pending:
            return
        left = {attempt.id: attempt for attempt in pending}
        for batch in self.client.iter_batches(page_size=100, max_pages=_RECOVERY_PAGES):
            for attempt in list(left.values()):
                if batch.metadata.get(JOB_KEY) == f"{self.job_id}/{attempt.key}" or (
                    attempt.file_id is not None and batch.input_file_id == attempt.file_id
                ):
                    self.store.created(attempt, batch, how="found after a restart")
                    self._tell("created", f"{attempt.label}: found batch {batch.id}", attempt)
                    del left[attempt.id]
            if not left:
                return
        for attempt in left.values():
            self.store.not_created(attempt)

    # --- ending and collecting -------------------------------------------------------------

    def _ended(self, attempt: Attempt, batch: Batch) -> None:
        codes = {error.code for error in batch.errors}
        if batch.status == "failed" and codes & CAPACITY_ERRORS:
            message = next(
                (error.message for error in batch.errors if error.code in CAPACITY_ERRORS), None
            )
            reason = f"batch {batch.id} failed: token_limit_exceeded ({message})"
            self.store.refused(attempt, batch, reason)
            self._refused(attempt, reason)
            return
        self._hold.release()  # a batch of the job ended: its capacity is free again
        self.store.ended(attempt, batch)
        self._tell("ended", f"{attempt.label}: batch {batch.id} {batch.status}", attempt)

    def _collect(self, attempt: Attempt) -> None:
        """Download (once), join, and make the next round's file from the retryable ones."""
        if attempt.state == "ended":
            downloaded = self.client.download_results(
                attempt.batch_id or "", self.workdir / "downloads"
            )
            self.store.downloaded(
                attempt,
                self._relative(downloaded.output) if downloaded.output else None,
                self._relative(downloaded.errors) if downloaded.errors else None,
            )
            attempt = self.store.attempt(attempt.id)
        statuses: list[tuple[str, str]] = []
        retry: list[int] = []
        with self._join(attempt) as join:
            for result in join:
                statuses.append((result.custom_id, result.status))
                if result.line is not None and should_retry(result):
                    retry.append(result.line)
        next_round = None
        if retry and attempt.round < self.pacing.max_rounds and not self.store.cancelled:
            path = self.workdir / f"round-{attempt.round + 1}" / f"shard-{attempt.shard:03d}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            written = write_retry_file(self._path(attempt.path), retry, path)
            next_round = self._attempt_file(path, written)
        self.store.collected(attempt, statuses, next_round)
        finished = len(statuses) - (next_round.requests if next_round else 0)
        message = f"{attempt.label}: {finished:,} finished"
        if next_round is not None:
            message += f", {next_round.requests:,} to send again in round {attempt.round + 1}"
        self._tell("collected", message, attempt)

    def _join(self, attempt: Attempt) -> Any:
        return iter_results(
            self._optional_path(attempt.output_path),
            self._optional_path(attempt.errors_path),
            self._path(attempt.path),
        )

    def _refused(self, attempt: Attempt, reason: str) -> None:
        running = len(self.store.attempts(IN_FLIGHT_STATES))
        self._hold.start(running)
        wait = (
            "until a batch of this job finishes"
            if running
            else f"{self._hold.remaining():.0f} s (no batch of this job is running)"
        )
        self._tell("refused", f"{attempt.label}: {reason}; waiting {wait}", attempt)

    # --- the results file ------------------------------------------------------------------

    def _finish(self, output: Path) -> RunResult:
        meta = self.store.meta()
        summary, _ = write_results(self._results(), output)
        attempts = self.store.attempts()
        refusals = self.store.count_events("refused")
        self.store.event("finished", f"{summary.total:,} result(s) in {output}")
        rejects = meta.get("rejects_file")
        return RunResult(
            results_file=output,
            job_file=self.store.path,
            summary=summary,
            shards=len(self.store.shards()),
            batches=sum(1 for attempt in attempts if attempt.batch_id),
            rounds=max((attempt.round for attempt in attempts), default=0),
            refusals=refusals,
            rejected=int(meta.get("rejected", "0")),
            rejects_file=self._path(rejects) if rejects else None,
            cancelled=self.store.cancelled,
        )

    def _results(self) -> Iterator[Result]:
        """Every request once, in input order: shard by shard, each request's last answer."""
        number = 0
        done = self.store.attempts(("done",))
        for shard in self.store.shards():
            chain = sorted(
                (attempt for attempt in done if attempt.shard == shard.shard),
                key=lambda attempt: attempt.round,
            )
            chain = [attempt for n, attempt in enumerate(chain, start=1) if attempt.round == n]
            results = self._merged(chain) if chain else self._never_sent(shard.path)
            for result in results:
                number += 1
                result.line = number
                yield result

    def _merged(self, chain: list[Attempt]) -> Iterator[Result]:
        """A shard's results: round 1's, each retried one replaced by its later answer.

        Round ``r + 1`` sent exactly round ``r``'s retryable requests, in order, so its
        results replace them one for one without holding anything in memory.
        """
        first, rest = chain[0], chain[1:]
        later = self._merged(rest) if rest else None
        with self._join(first) as join:
            for result in join:
                if later is not None and should_retry(result):
                    replacement = next(later, None)
                    if replacement is None or replacement.custom_id != result.custom_id:
                        raise JobFileError(
                            f"{self.store.path}: the results of {rest[0].label} do not match "
                            f"the requests it sent (at custom_id {result.custom_id!r}); run "
                            "with --restart"
                        )
                    result = replacement
                yield result

    def _never_sent(self, path: str) -> Iterator[Result]:
        """A shard the job never sent (it was cancelled first): each request ``cancelled``."""
        error = ResultError("job_cancelled", "not sent: the job was cancelled before this shard")
        with iter_results(None, None, self._path(path)) as join:
            for result in join:
                yield Result(result.custom_id, "cancelled", error=error)

    # --- small helpers ---------------------------------------------------------------------

    def _report_progress(self) -> None:
        if self.progress is None:
            return
        total = sum(shard.requests for shard in self.store.shards())
        outstanding = 0
        for attempt in self._open_attempts():
            counts = attempt.counts or {}
            outstanding += attempt.requests - counts.get("completed", 0) - counts.get("failed", 0)
        self.progress(max(total - outstanding, 0), total)

    def _tell(self, kind: str, message: str, attempt: Attempt | None = None) -> None:
        if self.on_event is not None:
            shard = attempt.shard if attempt else None
            round_ = attempt.round if attempt else None
            self.on_event(RunEvent(kind, message, shard, round_))

    def _attempt_file(self, path: Path, requests: int) -> AttemptFile:
        """A file for an attempt to send; its prompt tokens counted when the job has a limit."""
        tokens = None
        if self.settings.max_enqueued_tokens is not None:
            tokens = count_file_tokens(path, encoding=self.settings.encoding).prompt
        return AttemptFile(self._relative(path), file_sha256(path), requests, tokens)

    def _relative(self, path: Path) -> str:
        return os.path.relpath(path, self.workdir)

    def _path(self, relative: str) -> Path:
        return self.workdir / relative

    def _optional_path(self, relative: str | None) -> Path | None:
        return self.workdir / relative if relative is not None else None


@dataclass
class _CapacityHold:
    """After a capacity refusal, nothing is submitted until a batch of the job ends; with
    none running, until a pause (doubling from the poll interval, at most 10 minutes) ends."""

    base: float
    until: float | None = None
    waiting_for_batch: bool = False
    pauses: int = 0
    clock: Callable[[], float] = field(default=time.monotonic)

    @property
    def timed(self) -> bool:
        return self.until is not None

    def start(self, running: int) -> None:
        if running:
            self.waiting_for_batch, self.until = True, None
            return
        self.pauses += 1
        self.waiting_for_batch = False
        self.until = self.clock() + min(self.base * 2**self.pauses, _MAX_CAPACITY_PAUSE)

    def release(self) -> None:
        self.waiting_for_batch, self.until, self.pauses = False, None, 0

    def holding(self) -> bool:
        if self.waiting_for_batch:
            return True
        if self.until is not None and self.clock() >= self.until:
            self.until = None
        return self.until is not None

    def remaining(self) -> float:
        return max(self.until - self.clock(), 0.0) if self.until is not None else 0.0
