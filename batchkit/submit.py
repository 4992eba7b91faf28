"""Submit a batch file: validate, upload, create, and (optionally) wait.

The order is the point.  Everything that can fail without the network (validation, metadata
limits, the file's hash) happens before the first request, so a bad file costs nothing.  A
re-run of the same CI job must not pay twice: the file's sha256 goes into the batch metadata,
and a later submit of the same bytes to the same endpoint finds that batch instead of
uploading again.  The caller's own metadata may fill all 16 pairs the API allows; then there is
no room for the sha256, and that one batch is submitted without it (``rerun_detection`` is
false on the result: a later submit of the same file will not find it).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchkit.batches import Batch, FileObject
from batchkit.client import Client, expiry_policy
from batchkit.errors import InvalidInputError, UsageError, WaitTimeout
from batchkit.issues import FileReport, Issue
from batchkit.limits import PROFILES, Limits, Profile, get_profile
from batchkit.token_files import resolve_token_limit, validate_and_count, with_token_limit
from batchkit.validate import validate_file

__all__ = [
    "HASH_KEY",
    "MAX_METADATA_KEY",
    "MAX_METADATA_PAIRS",
    "MAX_METADATA_VALUE",
    "MAX_OUTPUT_EXPIRY",
    "MIN_OUTPUT_EXPIRY",
    "SubmitResult",
    "Unsupported",
    "check_metadata",
    "check_profile_serves",
    "check_user_metadata",
    "file_sha256",
    "find_existing_batch",
    "has_room_for_sha256",
    "submit",
    "wait_for_batch",
]

#: The metadata key that carries the file's sha256 (what makes re-runs safe).
HASH_KEY = "batchkit_sha256"
#: Metadata limits of the Batch API (CONTRACT.md section 4).
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
#: A batch in these states does not count as "already submitted": submitting again is right.
#: ``cancelling`` is included because it can only end as ``cancelled``.
NOT_REUSABLE = frozenset({"failed", "expired", "cancelled", "cancelling"})
#: How many pages of batches (of 100) the re-run check looks through; bounded so that an
#: account with a long history does not turn every submit into a crawl.
REUSE_PAGES = 5

_HASH_CHUNK = 1024 * 1024
#: ``output_expires_after.seconds``: 1 hour to 30 days (``BatchFileExpirationAfter`` in the
#: official spec).
MIN_OUTPUT_EXPIRY = 3600
MAX_OUTPUT_EXPIRY = 30 * 24 * 3600


class Unsupported(InvalidInputError):
    """The chosen profile does not serve this endpoint, completion window or option.

    Refused before anything is sent (exit 1, like any other invalid input); ``code`` says which
    (``unsupported_endpoint``, ``unsupported_completion_window``, ``unsupported_option``) and
    the message lists what the profile does serve.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _endpoint_refusal(profile: Profile, endpoint: str) -> str:
    return (
        f"the {profile.name} profile does not serve {endpoint}: it serves "
        f"{', '.join(profile.endpoints)} (choose another --profile, or another endpoint)"
    )


def check_profile_serves(
    profile: Profile,
    *,
    endpoint: str | None = None,
    completion_window: str | None = None,
    output_expires_after: int | None = None,
) -> None:
    """Raise :class:`Unsupported` unless ``profile`` serves what is asked of it.

    Checked before the file is read or anything sent: a provider would refuse it only after a
    200 MB upload.  ``output_expires_after`` outside 1 hour..30 days is a UsageError.
    """
    if endpoint is not None and not profile.serves(endpoint):
        raise Unsupported(_endpoint_refusal(profile, endpoint), "unsupported_endpoint")
    if completion_window is not None and completion_window not in profile.completion_windows:
        raise Unsupported(
            f"the {profile.name} profile does not accept --completion-window "
            f"{completion_window!r}: it accepts {', '.join(profile.completion_windows)}",
            "unsupported_completion_window",
        )
    if output_expires_after is None:
        return
    if not profile.output_expires_after:
        supported = sorted(name for name, known in PROFILES.items() if known.output_expires_after)
        raise Unsupported(
            f"the {profile.name} profile does not take --output-expires-after (the provider "
            f"does not document output_expires_after); profiles that do: {', '.join(supported)}",
            "unsupported_option",
        )
    if not MIN_OUTPUT_EXPIRY <= output_expires_after <= MAX_OUTPUT_EXPIRY:
        raise UsageError(
            f"output_expires_after must be 1 hour to 30 days ({MIN_OUTPUT_EXPIRY} to "
            f"{MAX_OUTPUT_EXPIRY} seconds), got {output_expires_after} seconds"
        )


def _refuse_unserved_endpoint(report: FileReport, profile: Profile) -> None:
    """Add ``unsupported_endpoint`` to a valid file's report when the profile does not serve
    the endpoint its lines name, so that it is shown as every other reason a file is refused."""
    endpoint = report.endpoint
    if endpoint is None or profile.serves(endpoint):
        return
    issue = Issue(None, "unsupported_endpoint", "url", _endpoint_refusal(profile, endpoint))
    report.errors.insert(0, issue)
    report.errors_total += 1


@dataclass
class SubmitResult:
    """What :func:`submit` did, for the CLI to print and for callers to act on."""

    #: The validation of the file.
    report: FileReport
    #: The batch created or reused; ``None`` on a dry run.
    batch: Batch | None
    #: The uploaded file; ``None`` when the batch was reused or on a dry run.
    file: FileObject | None
    #: True when an existing batch with the same sha256 and endpoint was found.
    reused: bool
    sha256: str
    dry_run: bool
    #: The create request's body (``input_file_id`` is ``None`` on a dry run).
    request: dict[str, Any] | None
    #: False when the caller's metadata filled every pair, so the sha256 is not in the batch's
    #: metadata and a later submit of the same file will not find this batch.
    rerun_detection: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch.raw if self.batch else None,
            "file": self.file.raw if self.file else None,
            "reused": self.reused,
            "sha256": self.sha256,
            "dry_run": self.dry_run,
            "request": self.request,
            "rerun_detection": self.rerun_detection,
            "validation": self.report.to_dict(),
        }


def check_metadata(metadata: Mapping[str, str]) -> None:
    """Raise InvalidInputError unless ``metadata`` fits the API's limits.

    Checked before any request, so that a long value does not fail the create after a
    200 MB upload.
    """
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidInputError(
            f"metadata has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"metadata key {key!r} must be a non-empty string")
        if len(key) > MAX_METADATA_KEY:
            raise InvalidInputError(
                f"metadata key {key[:20]!r}... is {len(key)} characters; "
                f"at most {MAX_METADATA_KEY} are allowed"
            )
        if not isinstance(value, str):
            raise InvalidInputError(
                f"metadata value for {key!r} must be a string, got {type(value).__name__}"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidInputError(
                f"metadata value for {key!r} is {len(value)} characters; "
                f"at most {MAX_METADATA_VALUE} are allowed"
            )


def check_user_metadata(metadata: Mapping[str, str]) -> None:
    """Raise InvalidInputError unless ``metadata`` may be given to :func:`submit`: the API's
    limits (:func:`check_metadata`), and batchkit's own key left to batchkit."""
    check_metadata(metadata)
    if HASH_KEY in metadata:
        raise InvalidInputError(f"metadata key {HASH_KEY!r} is reserved: batchkit sets it")


def has_room_for_sha256(metadata: Mapping[str, str]) -> bool:
    """Whether the file's sha256 fits beside the caller's metadata (the API allows 16 pairs).

    When it does not, the batch is made without it, and re-running the same submit makes
    another batch: callers should say so (the CLI warns).
    """
    return len(metadata) < MAX_METADATA_PAIRS


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The file's sha256 in hex, read in chunks so memory does not grow with the file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def find_existing_batch(client: Client, sha256: str, endpoint: str) -> Batch | None:
    """A batch already made from these bytes for this endpoint that may still succeed."""
    for batch in client.iter_batches(page_size=100, max_pages=REUSE_PAGES):
        if (
            batch.metadata.get(HASH_KEY) == sha256
            and batch.endpoint == endpoint
            and batch.status not in NOT_REUSABLE
        ):
            return batch
    return None


def submit(
    path: str | os.PathLike[str],
    *,
    client: Client | None = None,
    endpoint: str | None = None,
    metadata: Mapping[str, str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    completion_window: str | None = None,
    output_expires_after: int | None = None,
    limits: Limits | None = None,
    max_enqueued_tokens: int | None = None,
    encoding: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_validated: Callable[[FileReport], None] | None = None,
) -> SubmitResult:
    """Validate ``path``, then upload it and create a batch, unless that was already done.

    Raises :class:`InvalidInputError` (with the validation on ``.report``) when the file is
    invalid, before any request.  Without ``client`` one is built from the environment with
    :meth:`Client.from_settings` (not on a dry run, which needs no key and sends nothing).
    ``force`` skips the re-run check and always uploads and creates.  ``on_validated`` sees
    the report of a valid file before anything is sent (the CLI prints it above the upload bar).

    ``metadata`` may have up to 16 pairs (:func:`check_user_metadata`).  The file's sha256 is
    added as ``batchkit_sha256`` when there is room (up to 15 of the caller's); with 16 it is
    left out and the result's ``rerun_detection`` is false.

    The profile (the client's, else the one the environment names) must serve the file's
    endpoint, ``completion_window`` (default: the profile's first, ``24h``) and
    ``output_expires_after`` (seconds): otherwise :class:`Unsupported` (or, for an endpoint
    named only by the file's lines, an ``unsupported_endpoint`` error in the report), before
    anything is sent.

    ``max_enqueued_tokens`` (else ``BATCHKIT_MAX_ENQUEUED_TOKENS``, else the profile's) is the
    account's enqueued-token limit: a file with more prompt tokens (counted exactly, offline,
    with the model's tokenizer or ``encoding``) is refused with ``token_limit_exceeded``, as
    the provider would refuse it after the upload; at 90% the report gets a warning.
    """
    user_metadata = dict(metadata or {})
    check_user_metadata(user_metadata)
    rerun_detection = has_room_for_sha256(user_metadata)
    profile = client.profile if client is not None else get_profile()
    window = completion_window or profile.default_completion_window
    check_profile_serves(
        profile,
        endpoint=endpoint,
        completion_window=window,
        output_expires_after=output_expires_after,
    )

    token_limit = resolve_token_limit(max_enqueued_tokens, profile)
    chosen_limits = limits or profile.limits
    tokens = None
    if token_limit is None:
        report = validate_file(path, endpoint=endpoint, limits=chosen_limits)
    else:  # as `validate --tokens` does: a large file is counted while it is validated
        report, tokens = validate_and_count(
            path, endpoint=endpoint, limits=chosen_limits, encoding=encoding
        )
    if report.valid:
        _refuse_unserved_endpoint(report, profile)
    if report.valid and tokens is not None and token_limit is not None:
        report = with_token_limit(report, tokens, token_limit)
    if not report.valid:
        message = f"{path}: {report.errors_total} error(s); nothing was sent"
        if report.errors:
            first = report.errors[0]
            where = f"line {first.line}" if first.line is not None else "file"
            message += f" (first, {where}: {first.message})"
        error = InvalidInputError(message)
        error.report = report
        raise error
    if on_validated is not None:
        on_validated(report)
    target = report.endpoint or endpoint
    if target is None:  # a valid file has requests, and so an endpoint; this is a guard
        raise InvalidInputError(f"{path}: cannot tell the endpoint; give it explicitly")

    sha256 = file_sha256(path)
    request: dict[str, Any] = {
        "input_file_id": None,
        "endpoint": target,
        "completion_window": window,
        "metadata": {**user_metadata, HASH_KEY: sha256} if rerun_detection else user_metadata,
    }
    if output_expires_after is not None:
        request["output_expires_after"] = expiry_policy(output_expires_after)
    if dry_run:
        return SubmitResult(report, None, None, False, sha256, True, request, rerun_detection)

    owned = client is None
    active = client if client is not None else Client.from_settings()
    try:
        if not force:
            existing = find_existing_batch(active, sha256, target)
            if existing is not None:
                # Found by its sha256, so that batch has it: re-runs will find it again.
                return SubmitResult(report, existing, None, True, sha256, False, None)
        uploaded = active.upload_file(path, progress=progress)
        request["input_file_id"] = uploaded.id
        batch = active.create_batch(
            uploaded.id,
            target,
            completion_window=window,
            metadata=request["metadata"],
            output_expires_after=output_expires_after,
        )
        return SubmitResult(report, batch, uploaded, False, sha256, False, request, rerun_detection)
    finally:
        if owned:
            active.close()


def wait_for_batch(
    client: Client,
    batch_id: str,
    *,
    timeout: float | None = None,
    interval: float = 5.0,
    max_interval: float = 60.0,
    on_update: Callable[[Batch], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Batch:
    """Poll until the batch is terminal and return it; :class:`WaitTimeout` after ``timeout``.

    The interval grows by half each poll up to ``max_interval``: a 24-hour batch should not
    cost thousands of requests, and a quick one should still be seen finishing quickly.
    ``on_update`` sees every state (for a progress bar).
    """
    if interval <= 0 or max_interval <= 0:
        raise UsageError("the polling interval must be a positive number of seconds")
    started = clock()
    delay = interval
    while True:
        batch = client.retrieve_batch(batch_id)
        if on_update is not None:
            on_update(batch)
        if batch.is_terminal:
            return batch
        if timeout is not None:
            remaining = timeout - (clock() - started)
            if remaining <= 0:
                counts = batch.request_counts
                raise WaitTimeout(
                    f"batch {batch_id} is still {batch.status} after {timeout:g} s "
                    f"({counts.completed}/{counts.total} requests done)",
                    batch,
                )
            sleep(min(delay, remaining))
        else:
            sleep(delay)
        delay = min(delay * 1.5, max_interval)
