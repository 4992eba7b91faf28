"""``run_job``: prompts in, answers out, as one resumable job.

A job builds its input into shards exactly as ``batchkit build`` does, sends each shard as a
batch (at most ``max_active`` at a time), collects each batch's results as ``batchkit
results`` does, sends the retryable failures of each round again as a smaller batch (up to
``max_rounds`` rounds), and finally writes one results file: every request once, in input
order, with its final status.

Its whole state is in the job file (:mod:`batchkit.job`), so it can be killed at any moment
and run again with the same arguments: it picks up where it stopped, never creates a batch
twice (a create that may have reached the server is looked up first) and never downloads a
finished batch's results twice.  Arguments that would change what is sent (another input,
another model, other limits...) are refused for an existing job unless ``restart``.

Refusals about capacity rather than content, a batch failed with ``token_limit_exceeded``
(the provider's enqueued-token limit) or a create answered 429, are waited out: the shard is
sent again once a batch of the job has finished (or, with none running, after a pause).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batchkit.batches import Batch
from batchkit.build import InvalidRequestError, build_batch
from batchkit.client import Client
from batchkit.errors import ApiError, InvalidInputError, UsageError
from batchkit.inputs import BuildOptions, read_requests
from batchkit.job import (
    IN_FLIGHT_STATES,
    OPEN_STATES,
    Attempt,
    AttemptFile,
    JobFile,
    JobFileError,
    default_job_path,
    remove_job,
    work_directory,
)
from batchkit.limits import Limits
from batchkit.result_files import Summary, results_format, write_results, write_retry_file
from batchkit.results import Result, ResultError, iter_results, should_retry
from batchkit.submit import (
    HASH_KEY,
    MAX_METADATA_PAIRS,
    check_profile_serves,
    check_user_metadata,
    file_sha256,
)
from batchkit.tokens import count_file_tokens, resolve_token_limit

__all__ = [
    "CAPACITY_ERRORS",
    "JOB_KEY",
    "RunEvent",
    "RunResult",
    "cancel_job",
    "run_job",
]

#: The metadata key that ties a batch to its job, shard, round and try.
JOB_KEY = "batchkit_job"
#: A batch that failed with one of these codes was refused for capacity, not content.
CAPACITY_ERRORS = frozenset({"token_limit_exceeded"})
#: How many pages of batches (of 100) are searched for a create that may have been lost.
_RECOVERY_PAGES = 5
#: The longest pause before trying again after a capacity refusal with no batch running.
_MAX_CAPACITY_PAUSE = 600.0

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class RunEvent:
    """Something a job did that its user may want to see (``message`` says it in words)."""

    kind: str
    message: str
    shard: int | None = None
    round: int | None = None


@dataclass
class RunResult:
    """What :func:`run_job` did and wrote."""

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
class _Settings:
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


def run_job(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    job: PathLike | None = None,
    client: Client | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    prompt_column: str | None = None,
    system: str | None = None,
    id_column: str | None = None,
    skip_invalid: bool = False,
    limits: Limits | None = None,
    metadata: Mapping[str, str] | None = None,
    completion_window: str = "24h",
    max_active: int = 4,
    max_rounds: int = 3,
    max_enqueued_tokens: int | None = None,
    encoding: str | None = None,
    restart: bool = False,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Run (or resume) the job that turns ``inputs`` into the results file ``output``.

    - ``inputs``: JSONL, JSON array or CSV files as ``batchkit build`` reads them (with
      ``prompt_column``, ``system`` and ``id_column`` for CSV); read twice (hashed, then
      built), so not stdin.
    - ``output``: ``.jsonl`` or ``.csv``; every built request exactly once, in input order,
      with its final status.  ``line`` is the request's 1-based number in the job.
    - ``job``: the job file, by default ``output + ".job.db"``; shards, retry files and the
      server's result files are kept in a directory beside it (``NAME.job.files``).
    - ``client``: else one from the environment (:meth:`Client.from_settings`).
    - ``limits``: the split (else the client's profile's); ``metadata`` is put on every batch
      (at most 14 pairs: batchkit adds ``batchkit_job`` and ``batchkit_sha256``).
    - ``max_active`` batches at a time; ``max_rounds`` rounds (1 sends each request once).
    - ``max_enqueued_tokens`` (else ``BATCHKIT_MAX_ENQUEUED_TOKENS``, else the profile's): the
      account's enqueued-token limit.  Shards are split to stay under it, and the prompt
      tokens of the job's batches in flight are kept within it: the next shard goes once an
      earlier one has finished.  ``encoding`` names the tokenizer for an unknown model.
    - ``restart``: forget an existing job file and start again (refused while it has batches
      running: cancel them first, or they would be paid twice).
    - ``on_event`` sees what the job does; ``progress(finished, total)`` counts requests.

    Raises :class:`InvalidInputError` when a request is invalid (nothing is sent; with
    ``skip_invalid`` they go to the rejects file instead), :class:`UsageError` for options or
    a job file that do not fit.  An API or network error stops the run with the job file
    intact: run again to resume.
    """
    if max_active < 1 or max_rounds < 1:
        raise UsageError("max_active and max_rounds must be at least 1")
    if poll_interval <= 0 or max_poll_interval <= 0:
        raise UsageError("the polling interval must be a positive number of seconds")
    paths = _input_paths(inputs)
    results_format(output)
    user_metadata = dict(metadata or {})
    check_user_metadata(user_metadata)
    if JOB_KEY in user_metadata or len(user_metadata) > MAX_METADATA_PAIRS - 2:
        raise UsageError(
            f"run puts {JOB_KEY} and {HASH_KEY} on every batch: give at most "
            f"{MAX_METADATA_PAIRS - 2} metadata pairs of your own, none named {JOB_KEY}"
        )
    job_path = Path(job) if job is not None else default_job_path(output)
    owned = client is None
    active = client if client is not None else Client.from_settings()
    try:
        active.require_key()
        # What the profile cannot serve is refused before anything is built or sent; an
        # endpoint named by the input's first url is checked once the shards are built.
        check_profile_serves(active.profile, endpoint=endpoint, completion_window=completion_window)
        chosen = limits if limits is not None else active.profile.limits
        settings = _Settings(
            endpoint=endpoint,
            model=model,
            prompt_column=prompt_column,
            system=system,
            id_column=id_column,
            skip_invalid=skip_invalid,
            limits=dataclasses.asdict(chosen),
            metadata=user_metadata,
            completion_window=completion_window,
            max_enqueued_tokens=resolve_token_limit(max_enqueued_tokens, active.profile),
            encoding=encoding,
            api={"profile": active.profile.name, "base_url": active.base_url},
        )
        with _OpenJob(job_path, paths, settings, restart) as store:
            runner = _Runner(
                store,
                active,
                chosen,
                settings,
                paths,
                work_directory(job_path),
                pacing=_Pacing(max_active, max_rounds, poll_interval, max_poll_interval),
                on_event=on_event,
                progress=progress,
                sleep=sleep,
            )
            return runner.run(Path(output))
    finally:
        if owned:
            active.close()


def cancel_job(job: PathLike, client: Client | None = None) -> list[Batch]:
    """Cancel every batch of the job that is running, and record that the job is cancelled:
    a run of it (the one going now, or a later one) sends nothing new, collects what the
    batches did, and writes the results (requests never sent are ``cancelled``).

    Returns the batches as the cancels left them.  Needs no lock: it works while the job runs.
    """
    owned = client is None
    active = client if client is not None else Client.from_settings()
    try:
        with JobFile.open(job) as store:
            store.set_meta({"cancelled": "1"}, event="cancel")
            cancelled = []
            for attempt in store.attempts(("active",)):
                batch = active.cancel_batch(attempt.batch_id or "")
                store.progressed(attempt, batch)
                cancelled.append(batch)
            return cancelled
    finally:
        if owned:
            active.close()


def _input_paths(inputs: PathLike | Sequence[PathLike]) -> list[Path]:
    given = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not given:
        raise UsageError("give the input file(s) of the job")
    paths = []
    for item in given:
        if os.fspath(item) == "-":
            raise UsageError(
                "run reads its input again when it is resumed: give a file, not stdin (-)"
            )
        path = Path(item)
        if not path.is_file():
            raise UsageError(f"{path}: no such file (the input)")
        paths.append(path)
    return paths


def _inputs_sha256(paths: Sequence[Path]) -> str:
    """One hash for the inputs' contents, in order (their names do not matter)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


class _OpenJob:
    """The job file for this run: created, or opened and checked against the arguments.

    A job file that has no shards yet has sent nothing, so it is simply taken over by these
    arguments; and one created here is removed again if this run stops before its shards
    are recorded (a bad input, a usage error), so that nothing half-made is left behind.
    """

    def __init__(
        self, path: Path, inputs: Sequence[Path], settings: _Settings, restart: bool
    ) -> None:
        self.path = path
        self.inputs = inputs
        self.settings = settings
        self.restart = restart
        self.store: JobFile | None = None
        self.created = False

    def __enter__(self) -> JobFile:
        sha256 = _inputs_sha256(self.inputs)
        meta = {"input_sha256": sha256, "settings": self.settings.as_json()}
        if self.path.exists() and self.restart:
            _forget(self.path)
        if not self.path.exists():
            self.store = JobFile.create(self.path, {**meta, "created": _now()})
            self.created = True
            self.store.lock()
            return self.store
        store = self.store = JobFile.open(self.path)
        store.lock()
        if not store.shards():  # nothing was sent: these arguments may take it over
            store.set_meta(meta)
            return store
        recorded = store.meta()
        if recorded.get("input_sha256") != sha256:
            raise JobFileError(
                f"{self.path} is the job of another input (its sha256 differs): run with "
                "--restart to start a new job for this input, or give another --job file"
            )
        changed = self.settings.differences(recorded.get("settings", "{}"))
        if changed:
            raise JobFileError(
                f"{self.path} was started with other options ({', '.join(changed)} "
                "differ): run with the same options to resume it, or with --restart to "
                "start again"
            )
        return store

    def __exit__(self, error_type: object, *exc_info: object) -> None:
        if self.store is None:
            return
        unbuilt = error_type is not None and self.created and not self.store.shards()
        self.store.close()
        if unbuilt:
            remove_job(self.path)
            shutil.rmtree(work_directory(self.path), ignore_errors=True)


def _forget(path: Path) -> None:
    """``restart``: remove the job file and its files, unless it has batches running."""
    try:
        with JobFile.open(path) as old:
            old.lock()
            running = old.attempts(IN_FLIGHT_STATES)
    except JobFileError:
        running = []  # a damaged file cannot say; starting again is what was asked
    if running:
        ids = ", ".join(
            attempt.batch_id or f"{attempt.label} (being created)" for attempt in running
        )
        raise JobFileError(
            f"{path} has {len(running)} batch(es) still running ({ids}): cancel them first "
            f"(batchkit job cancel {path}) or let the job finish, so that no request is paid "
            "twice"
        )
    remove_job(path)
    shutil.rmtree(work_directory(path), ignore_errors=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class _Pacing:
    """How a run goes about its batches.  Unlike :class:`_Settings`, these may change from
    one run of a job to the next (a resumed job may be given more rounds)."""

    max_active: int
    max_rounds: int
    poll_interval: float
    max_poll_interval: float


class _Runner:
    """One run of a job: build if not built, then poll, collect and submit until done."""

    def __init__(
        self,
        store: JobFile,
        client: Client,
        limits: Limits,
        settings: _Settings,
        inputs: Sequence[Path],
        workdir: Path,
        *,
        pacing: _Pacing,
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
