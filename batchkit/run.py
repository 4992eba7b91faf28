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

This module checks the arguments, opens the job file (creating it, taking it over, or
starting it again) and hands over to the loop, :class:`batchkit.job_runner.JobRunner`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from batchkit.batches import Batch
from batchkit.client import Client
from batchkit.errors import UsageError
from batchkit.job import (
    IN_FLIGHT_STATES,
    JobFile,
    JobFileError,
    default_job_path,
    remove_job,
    work_directory,
)
from batchkit.job_runner import (
    CAPACITY_ERRORS,
    JOB_KEY,
    JobRunner,
    JobSettings,
    Pacing,
    RunEvent,
    RunResult,
)
from batchkit.limits import Limits
from batchkit.result_files import results_format
from batchkit.submit import (
    HASH_KEY,
    MAX_METADATA_PAIRS,
    check_profile_serves,
    check_user_metadata,
    file_sha256,
)
from batchkit.token_files import resolve_token_limit

__all__ = [
    "CAPACITY_ERRORS",
    "JOB_KEY",
    "RunEvent",
    "RunResult",
    "cancel_job",
    "run_job",
]

PathLike = str | os.PathLike[str]


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
        settings = JobSettings(
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
            runner = JobRunner(
                store,
                active,
                chosen,
                settings,
                paths,
                work_directory(job_path),
                pacing=Pacing(max_active, max_rounds, poll_interval, max_poll_interval),
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
        self, path: Path, inputs: Sequence[Path], settings: JobSettings, restart: bool
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
