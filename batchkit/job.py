"""The job file of ``batchkit run``: a whole job's state in one SQLite database.

A job is an input built into shards, each shard sent as a batch, and the retryable failures
of each round sent again as a smaller batch in the next round.  Everything the job has done
is in this file, so that a process killed at any moment can be run again and pick up where it
stopped.  The rules that make that safe:

- **One transaction per state change**, and the change is committed before the next step is
  taken (``synchronous=FULL``: a commit survives a power cut too).  The moment that matters
  is the create: an attempt is marked ``creating`` before the create is sent, so a later run
  that finds it so knows the batch may exist and looks for it (by the ``batchkit_job``
  metadata the create carried, or its uploaded file) before it ever creates another.
- **One process at a time** runs a job: :meth:`JobFile.lock` takes an exclusive lock on the
  file, so a second ``batchkit run`` of the same job is refused instead of doubling it.
  Readers (``batchkit job status``) need no lock (WAL mode).
- Files the job writes (shards, retry files, downloads) are written atomically and recorded
  only once complete, with paths relative to the job's directory.

The attempt states, in order::

    pending -> uploaded -> creating -> active -> ended -> downloaded -> done
                                          \\-> refused (capacity: a new try of the shard)

The schema is versioned (``PRAGMA user_version``); a file from a newer batchkit is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from batchkit.batches import Batch
from batchkit.errors import UsageError

__all__ = [
    "OPEN_STATES",
    "SCHEMA_VERSION",
    "Attempt",
    "AttemptFile",
    "JobFile",
    "JobFileError",
    "Shard",
    "default_job_path",
    "remove_job",
    "work_directory",
]

#: The version of the tables below; bump it (and migrate) when they change.
SCHEMA_VERSION = 1
#: An attempt in one of these states still has work to do (or a batch on the server).
OPEN_STATES = ("pending", "uploaded", "creating", "active", "ended", "downloaded")
#: States in which the attempt's batch may exist on the server and has not ended.
IN_FLIGHT_STATES = ("creating", "active")
#: How long a writer waits for another connection's transaction (``job cancel`` while a run
#: is going) before giving up.
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE shards (
    shard INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    requests INTEGER NOT NULL
);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    shard INTEGER NOT NULL REFERENCES shards (shard),
    round INTEGER NOT NULL,
    try INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    requests INTEGER NOT NULL,
    state TEXT NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    status TEXT,
    counts TEXT,
    output_path TEXT,
    errors_path TEXT,
    note TEXT,
    tokens INTEGER,
    updated_at REAL NOT NULL,
    UNIQUE (shard, round, try)
);
CREATE TABLE requests (
    custom_id TEXT PRIMARY KEY,
    shard INTEGER NOT NULL,
    round INTEGER NOT NULL,
    status TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    shard INTEGER,
    round INTEGER,
    detail TEXT
);
"""


class JobFileError(UsageError):
    """The job file cannot be used as it is (damaged, from a newer batchkit, locked...)."""


def default_job_path(output: str | os.PathLike[str]) -> Path:
    """``results.jsonl`` -> ``results.jsonl.job.db``: the job file beside its results."""
    return Path(f"{os.fspath(output)}.job.db")


def work_directory(job_path: str | os.PathLike[str]) -> Path:
    """Where a job keeps its shards, retry files and downloads: ``NAME.job.db`` ->
    ``NAME.job.files/``, beside the job file."""
    path = Path(job_path)
    stem = path.name[: -len(".db")] if path.name.endswith(".db") else path.name
    return path.with_name(f"{stem}.files")


@dataclass(frozen=True)
class AttemptFile:
    """A file an attempt sends: a shard, or a round's retries of one (path relative to the
    job's directory)."""

    path: str
    sha256: str
    requests: int
    #: Its prompt tokens, counted when the job has an enqueued-token limit.
    tokens: int | None = None


@dataclass(frozen=True)
class Shard:
    """One file of the built input, as round 1 sends it."""

    shard: int
    path: str
    sha256: str
    requests: int


@dataclass(frozen=True)
class Attempt:
    """One batch's worth of one shard: round ``round`` (1 = the whole shard, then only its
    retries), try ``try_`` (a capacity refusal makes another try of the same round)."""

    id: int
    shard: int
    round: int
    try_: int
    path: str
    sha256: str
    requests: int
    state: str
    file_id: str | None
    batch_id: str | None
    status: str | None
    counts: dict[str, int] | None
    output_path: str | None
    errors_path: str | None
    note: str | None
    #: The file's prompt tokens, when the job has an enqueued-token limit.
    tokens: int | None

    @property
    def key(self) -> str:
        """``shard/round/try``: with the job id, the ``batchkit_job`` metadata of its batch."""
        return f"{self.shard}/{self.round}/{self.try_}"

    @property
    def label(self) -> str:
        """``shard 2, round 1`` (and ``try 2`` when there was more than one)."""
        text = f"shard {self.shard}, round {self.round}"
        return text if self.try_ == 1 else f"{text}, try {self.try_}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "round": self.round,
            "try": self.try_,
            "requests": self.requests,
            "state": self.state,
            "batch_id": self.batch_id,
            "status": self.status,
            "request_counts": self.counts,
            "note": self.note,
        }


_ATTEMPT_COLUMNS = (
    "id, shard, round, try, path, sha256, requests, state, file_id, batch_id, status, counts, "
    "output_path, errors_path, note, tokens"
)


def _attempt(row: Sequence[Any]) -> Attempt:
    values = list(row)
    values[11] = orjson.loads(values[11]) if values[11] else None
    return Attempt(*values)


class JobFile:
    """An open job file.  Every method that changes state commits before it returns."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock_fd: int | None = None

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], meta: dict[str, str]) -> JobFile:
        """A new job file at ``path`` (which must not exist) holding ``meta``.

        Made under a temporary name and linked into place complete, so that no half-made job
        file is ever found at ``path``.
        """
        target = Path(path)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(temporary)
            try:
                connection.executescript(
                    f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )
                with connection:
                    connection.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("job_id", secrets.token_hex(8)), *meta.items()],
                    )
            finally:
                connection.close()
            os.link(temporary, target)  # unlike a rename, never replaces an existing file
        except FileExistsError:
            raise JobFileError(f"{target}: already exists") from None
        except (OSError, sqlite3.Error) as error:
            raise JobFileError(f"{target}: cannot create the job file: {error}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return cls.open(target)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> JobFile:
        """An existing job file, checked to be one this batchkit can use."""
        target = Path(path)
        if not target.exists():
            raise JobFileError(f"{target}: no such job file")
        if not target.is_file():
            raise JobFileError(f"{target}: is not a file (a job file is one SQLite file)")
        if not os.access(target, os.R_OK | os.W_OK):
            raise JobFileError(f"{target}: the job file cannot be read and written (permissions)")
        try:
            connection = _connect(target)
        except sqlite3.Error as error:
            raise JobFileError(_damaged(target, error)) from None
        job = cls(target, connection)
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.Error as error:
            job.close()
            raise JobFileError(_damaged(target, error)) from None
        if version > SCHEMA_VERSION:
            job.close()
            raise JobFileError(
                f"{target}: the job file was made by a newer batchkit (schema {version}; this "
                f"one reads {SCHEMA_VERSION}): upgrade batchkit"
            )
        if check != "ok" or version < 1 or not {"meta", "attempts", "shards"} <= tables:
            job.close()
            raise JobFileError(_damaged(target, check if check != "ok" else "no job tables"))
        return job

    def close(self) -> None:
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # after the connection, so SQLite's own locks are gone
            self._lock_fd = None

    def __enter__(self) -> JobFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lock(self) -> None:
        """Make this process the only one running the job (until :meth:`close`)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobFileError(
                f"{self.path}: another batchkit process is running this job; wait for it "
                "to end (or stop it) before running the job again"
            ) from None
        self._lock_fd = fd

    # --- reading -------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self._guard("read"):
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    @property
    def job_id(self) -> str:
        return self.meta()["job_id"]

    @property
    def cancelled(self) -> bool:
        return self.meta().get("cancelled") == "1"

    def shards(self) -> list[Shard]:
        with self._guard("read"):
            rows = self._db.execute(
                "SELECT shard, path, sha256, requests FROM shards ORDER BY shard"
            ).fetchall()
        return [Shard(*row) for row in rows]

    def attempts(self, states: Iterable[str] | None = None) -> list[Attempt]:
        """The attempts (in ``states``, else all) in the order they were made."""
        query = f"SELECT {_ATTEMPT_COLUMNS} FROM attempts"
        wanted = tuple(states) if states is not None else ()
        if states is not None:
            query += f" WHERE state IN ({', '.join('?' * len(wanted))})"
        with self._guard("read"):
            rows = self._db.execute(query + " ORDER BY id", wanted).fetchall()
        return [_attempt(row) for row in rows]

    def attempt(self, attempt_id: int) -> Attempt:
        with self._guard("read"):
            row = self._db.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE id = ?", (attempt_id,)
            ).fetchone()
        return _attempt(row)

    def count_events(self, kind: str) -> int:
        with self._guard("read"):
            row = self._db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,))
            return int(row.fetchone()[0])

    def request_counts(self) -> dict[str, int]:
        """The requests whose state is known, by status (their latest round's)."""
        with self._guard("read"):
            rows = self._db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status")
            return dict(rows.fetchall())

    def describe(self) -> dict[str, Any]:
        """The job as ``batchkit job status --format json`` shows it: each shard with its
        attempts (round, try, batch id, status, counts), and the requests by status."""
        meta = self.meta()
        attempts = self.attempts()
        with self._guard("read"):
            finished = self._db.execute(
                "SELECT COUNT(*) FROM events WHERE kind = 'finished'"
            ).fetchone()[0]
        open_ = [attempt for attempt in attempts if attempt.state in OPEN_STATES]
        return {
            "job_file": str(self.path),
            "job_id": meta["job_id"],
            "created": meta.get("created"),
            "endpoint": meta.get("endpoint"),
            "input_sha256": meta.get("input_sha256"),
            "cancelled": meta.get("cancelled") == "1",
            "finished": bool(finished) and not open_,
            "rejected": int(meta.get("rejected", "0")),
            "shards": [
                {
                    "shard": shard.shard,
                    "requests": shard.requests,
                    "attempts": [
                        attempt.to_dict() for attempt in attempts if attempt.shard == shard.shard
                    ],
                }
                for shard in self.shards()
            ],
            "requests": self.request_counts(),
        }

    # --- changing ------------------------------------------------------------------------

    def set_meta(self, values: dict[str, str], event: str | None = None) -> None:
        with self._change("update the job") as db:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())
            if event is not None:
                _event(db, event)

    def add_shards(self, shards: Sequence[AttemptFile], meta: dict[str, str]) -> None:
        """The built shards, each with its round-1 attempt."""
        with self._change("record the shards") as db:
            for number, shard in enumerate(shards, start=1):
                db.execute(
                    "INSERT INTO shards VALUES (?, ?, ?, ?)",
                    (number, shard.path, shard.sha256, shard.requests),
                )
                _insert_attempt(db, number, 1, 1, shard)
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
            _event(db, "built", detail=f"{len(shards)} shard(s)")

    def uploaded(self, attempt: Attempt, file_id: str) -> None:
        self._move(attempt, "uploaded", "uploaded", file_id, file_id=file_id)

    def creating(self, attempt: Attempt) -> None:
        """Recorded before the create is sent: from now on the batch may exist."""
        self._move(attempt, "creating", "creating", attempt.file_id)

    def created(self, attempt: Attempt, batch: Batch, how: str = "created") -> None:
        self._move(attempt, "active", "created", f"{batch.id} ({how})", **_batch_fields(batch))

    def create_refused(self, attempt: Attempt, reason: str) -> None:
        """The server refused the create (429): no batch; the upload is kept for the next try."""
        self._move(attempt, "uploaded", "refused", reason, note=reason)

    def upload_lost(self, attempt: Attempt, reason: str) -> None:
        """The server no longer has the attempt's upload (a create answered 404): upload the
        file again."""
        self._move(attempt, "pending", "upload_lost", reason, file_id=None)

    def not_created(self, attempt: Attempt) -> None:
        """A ``creating`` attempt whose batch a listing did not find: the create is sent again
        (from the same upload)."""
        self._move(attempt, "uploaded", "not_created", "no batch was found: creating it again")

    def progressed(self, attempt: Attempt, batch: Batch) -> None:
        """A batch still running: its status and counts, when they changed (no event)."""
        fields = _batch_fields(batch)
        if (attempt.status, attempt.counts) == (batch.status, orjson.loads(fields["counts"])):
            return
        with self._change("record a batch's progress") as db:
            _update(db, attempt, **fields)

    def ended(self, attempt: Attempt, batch: Batch) -> None:
        self._move(attempt, "ended", "ended", batch.status, **_batch_fields(batch))

    def downloaded(self, attempt: Attempt, output: str | None, errors: str | None) -> None:
        self._move(
            attempt,
            "downloaded",
            "downloaded",
            None,
            output_path=output,
            errors_path=errors,
        )

    def refused(self, attempt: Attempt, batch: Batch, reason: str) -> None:
        """The batch failed for capacity (``token_limit_exceeded``): the same file becomes the
        shard's next try in the same round."""
        with self._change("record a refused batch") as db:
            _update(db, attempt, state="refused", note=reason, **_batch_fields(batch))
            same_file = AttemptFile(attempt.path, attempt.sha256, attempt.requests, attempt.tokens)
            # The upload is reused (a create answered 404 would upload it again).
            _insert_attempt(
                db, attempt.shard, attempt.round, attempt.try_ + 1, same_file, attempt.file_id
            )
            _event(db, "refused", attempt, reason)

    def collected(
        self,
        attempt: Attempt,
        statuses: Iterable[tuple[str, str]],
        next_round: AttemptFile | None,
    ) -> None:
        """An attempt's results are joined: each request's status, and the next round's file
        when some are worth sending again."""
        with self._change("record the results") as db:
            db.executemany(
                "INSERT OR REPLACE INTO requests (custom_id, shard, round, status) "
                "VALUES (?, ?, ?, ?)",
                (
                    (custom_id, attempt.shard, attempt.round, status)
                    for custom_id, status in statuses
                ),
            )
            _update(db, attempt, state="done")
            detail = None
            if next_round is not None:
                _insert_attempt(db, attempt.shard, attempt.round + 1, 1, next_round)
                detail = f"{next_round.requests} request(s) to round {attempt.round + 1}"
            _event(db, "collected", attempt, detail)

    def event(self, kind: str, detail: str | None = None) -> None:
        with self._change("record an event") as db:
            _event(db, kind, detail=detail)

    # --- helpers -------------------------------------------------------------------------

    def _move(
        self, attempt: Attempt, state: str, event: str, detail: str | None, **fields: Any
    ) -> None:
        with self._change(f"record {event}") as db:
            _update(db, attempt, state=state, **fields)
            _event(db, event, attempt, detail)

    @contextlib.contextmanager
    def _change(self, what: str) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on success and rolled back on any exception."""
        with self._guard(what), self._db:
            yield self._db

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            raise JobFileError(
                f"{self.path}: cannot {what}: {error} (the job file is unchanged; free some "
                "space or fix the cause, then run the same command again)"
            ) from None
        except sqlite3.DatabaseError as error:
            raise JobFileError(_damaged(self.path, error)) from None


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None would leave transactions to us; the default (deferred, committed by
    # the connection's context manager) is what every method here wants.
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def _damaged(path: Path, error: object) -> str:
    return (
        f"{path}: not a usable batchkit job file ({error}); if it is damaged, run again with "
        "--restart to start a new job (see `batchkit list` for batches it may have made)"
    )


def _batch_fields(batch: Batch) -> dict[str, Any]:
    counts = batch.request_counts
    return {
        "batch_id": batch.id,
        "status": batch.status,
        "counts": orjson.dumps(
            {"total": counts.total, "completed": counts.completed, "failed": counts.failed}
        ).decode(),
    }


def _update(db: sqlite3.Connection, attempt: Attempt, **fields: Any) -> None:
    fields["updated_at"] = time.time()
    columns = ", ".join(f"{name} = ?" for name in fields)
    db.execute(f"UPDATE attempts SET {columns} WHERE id = ?", (*fields.values(), attempt.id))


def _insert_attempt(
    db: sqlite3.Connection,
    shard: int,
    round_: int,
    try_: int,
    file: AttemptFile,
    file_id: str | None = None,
) -> None:
    """A new attempt: ``pending``, or ``uploaded`` when its file is already on the server."""
    db.execute(
        "INSERT INTO attempts "
        "(shard, round, try, path, sha256, requests, tokens, state, file_id, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            shard,
            round_,
            try_,
            file.path,
            file.sha256,
            file.requests,
            file.tokens,
            "uploaded" if file_id else "pending",
            file_id,
            time.time(),
        ),
    )


def _event(
    db: sqlite3.Connection,
    kind: str,
    attempt: Attempt | None = None,
    detail: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO events (at, kind, shard, round, detail) VALUES (?, ?, ?, ?, ?)",
        (
            time.time(),
            kind,
            attempt.shard if attempt else None,
            attempt.round if attempt else None,
            detail,
        ),
    )


def remove_job(path: str | os.PathLike[str]) -> None:
    """Delete a job file (with its WAL and shared-memory files); its directory is the caller's."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{os.fspath(path)}{suffix}")
