"""The client for OpenAI-style Files and Batches APIs (orq.ai first): the API's operations.

Each method says which requests make up one operation and reads the answer into the objects of
:mod:`batchkit.batches`.  How a request is sent (session, timeouts, retries, typed errors,
redaction) is :mod:`batchkit.http`'s; how its body streams, :mod:`batchkit.streams`'.  One rule
needs both: a *create* is never blindly repeated.  When its answer may have been lost, the client
first lists the batches and takes the one made from the same input file, so one call creates at
most one batch whatever the network does.

The answer objects (:class:`Batch`, :class:`FileObject`...) and the redaction helpers were first
defined here and are still importable from here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson
import requests

from batchkit.atomic import atomic_writer
from batchkit.batches import (
    TERMINAL_STATUSES,
    Batch,
    BatchError,
    BatchNotFinishedError,
    DownloadedResults,
    FileObject,
    RequestCounts,
)
from batchkit.errors import ApiError, BatchkitError, InvalidInputError, NetworkError, UsageError
from batchkit.failures import RETRY_STATUSES, parse_retry_after
from batchkit.http import HttpClient, MaybeDelivered
from batchkit.json_values import snippet
from batchkit.limits import Profile, get_profile
from batchkit.redact import display_url, redact_secret, redact_userinfo
from batchkit.streams import multipart_file

#: The variable that overrides the profile's base URL.
BASE_URL_ENV = "BATCHKIT_BASE_URL"

__all__ = [
    "BASE_URL_ENV",
    "RETRY_STATUSES",
    "TERMINAL_STATUSES",
    "Batch",
    "BatchError",
    "BatchNotFinishedError",
    "Client",
    "DownloadedResults",
    "FileObject",
    "RequestCounts",
    "display_url",
    "expiry_policy",
    "parse_retry_after",
    "redact_secret",
    "redact_userinfo",
]

logger = logging.getLogger(__name__)

#: How far back a lost create is looked for: a just-created batch is on the first page.
_RECOVERY_PAGES = 3
#: The answers with which a server refuses to cancel a batch, perhaps because it has finished:
#: OpenAI 400 ("already in terminal status"), llama-stack 409.
_CANCEL_REFUSALS = frozenset({400, 409})


def _read_key_file(path: str | os.PathLike[str]) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read the API key file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the API key file {path} is not UTF-8 text") from None
    key = text.strip()
    if not key:
        raise UsageError(f"the API key file {path} is empty")
    return key


class Client(HttpClient):
    """Talks to one provider's Files and Batches APIs.

    Build it with :meth:`from_settings` to resolve flags and environment variables the way
    the CLI does, or directly with explicit values.  The profile says where the API's paths
    are; :class:`~batchkit.http.HttpClient` how every request is sent.
    """

    def __init__(
        self,
        profile: str | Profile | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        max_retry_time: float = 120.0,
        allow_insecure_http: bool = False,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        key_hint: str | None = None,
    ) -> None:
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        if base_url is not None and not base_url.strip():
            default = self.profile.base_url or "https://..."
            raise UsageError(
                f"the base URL (--base-url) is empty: give a URL, or leave the option out to use "
                f"the profile's ({default})"
            )
        url = base_url or self.profile.base_url
        if not url:
            example = self.profile.base_url_example
            shape = f" (such as {example})" if example else ""
            raise UsageError(
                f"profile {self.profile.name!r} has no default base URL: give your own with "
                f"--base-url{shape} or {BASE_URL_ENV}"
            )
        super().__init__(
            url,
            api_key=api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            max_retry_time=max_retry_time,
            allow_insecure_http=allow_insecure_http,
            session=session,
            sleep=sleep,
            key_hint=key_hint or f"set {self.profile.api_key_env} or pass --api-key-file",
            auth=self.profile.auth,
            key_required=self.profile.key_required,
        )

    @classmethod
    def from_settings(
        cls,
        *,
        profile: str | Profile | None = None,
        base_url: str | None = None,
        api_key_file: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Client:
        """The one place settings are resolved: flag, then environment variable, then default.

        Profile: ``profile`` > ``BATCHKIT_PROFILE`` > ``orq``.  Base URL: ``base_url`` >
        ``BATCHKIT_BASE_URL`` > the profile's.  Key: ``api_key_file`` > the profile's variable
        (``ORQ_API_KEY``...).  A missing key is reported when a request needs it, so that
        commands that send nothing work without one.  An empty variable counts as unset, as is
        usual; an empty ``base_url`` given explicitly is a mistake (a UsageError).
        """
        resolved = profile if isinstance(profile, Profile) else get_profile(profile)
        url = (
            base_url if base_url is not None else (os.environ.get(BASE_URL_ENV, "").strip() or None)
        )
        if api_key_file is not None:
            key: str | None = _read_key_file(api_key_file)
            hint = f"check the key in the file given with --api-key-file ({api_key_file})"
        else:
            key = os.environ.get(resolved.api_key_env, "").strip() or None
            hint = f"check {resolved.api_key_env} (or pass --api-key-file)"
        kwargs.setdefault("key_hint", hint)
        return cls(resolved, base_url=url, api_key=key, **kwargs)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "missing"
        shown = display_url(self.base_url)
        return f"Client(profile={self.profile.name!r}, base_url={shown!r}, api_key={key})"

    # --- the API ---------------------------------------------------------------------------

    def upload_file(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str = "batch",
        progress: Callable[[int, int], None] | None = None,
    ) -> FileObject:
        """Upload a file streamed from disk: memory does not grow with its size.

        The server refuses names that do not end in ``.jsonl``: by default the file's own name
        is used, with its suffix replaced by ``.jsonl`` if needed.  ``progress(sent, total)``
        counts multipart bytes; after a retry it starts again from 0.
        """
        source = Path(path)
        name = filename if filename is not None else source.name
        if filename is None and not name.endswith(".jsonl"):
            name = source.stem + ".jsonl"
        if not name.endswith(".jsonl") or name == ".jsonl":
            raise InvalidInputError(f"upload file name {name!r} must end in .jsonl")
        try:
            handle = source.open("rb")
        except OSError as error:
            raise InvalidInputError(f"cannot read {source}: {error.strerror}") from None
        with handle:
            body = multipart_file(handle, name, purpose=purpose, progress=progress)
            response = self._send("POST", self._url(self.profile.files_path), body=body)
        return FileObject.from_json(self._json(response))

    def create_batch(
        self,
        input_file_id: str,
        endpoint: str,
        *,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        output_expires_after: int | None = None,
    ) -> Batch:
        """Create a batch; at most one, whatever the network does.

        ``output_expires_after`` (seconds) is sent as OpenAI's ``{"anchor": "created_at",
        "seconds": N}``; whether the profile takes it is :func:`batchkit.submit.check_options`'
        to say, before anything is sent.

        A create that may have reached the server (a dropped connection, a read timeout, a
        5xx) is not repeated until a listing shows that no batch uses ``input_file_id``.  A 429
        or a failed connect means the server did nothing, so those are simply retried.
        """
        document: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
        }
        if metadata:
            document["metadata"] = dict(metadata)
        if output_expires_after is not None:
            document["output_expires_after"] = expiry_policy(output_expires_after)
        payload = orjson.dumps(document)
        url = self._url(self.profile.batches_path)
        budget = self._new_budget()

        def body() -> tuple[Any, dict[str, str]]:
            return payload, {"Content-Type": "application/json"}

        while True:
            try:
                response = self._send("POST", url, body=body, retry="unsent_only", budget=budget)
            except MaybeDelivered as lost:
                existing = self._recover_create(input_file_id, lost.error)
                if existing is not None:
                    return existing
                delay = lost.retry_after
                if delay is None:
                    delay = self._backoff(budget.attempts)
                self._pause_or_give_up(budget, delay, lost.error)
                logger.info("no batch was created for %s: sending the create again", input_file_id)
                continue
            return self._batch(response)

    def list_batches(self, *, limit: int = 20, after: str | None = None) -> list[Batch]:
        """One page of batches, newest first (as the providers return them)."""
        return self._list_page(limit=limit, after=after)[0]

    def iter_batches(
        self, *, page_size: int = 100, max_pages: int | None = None
    ) -> Iterator[Batch]:
        """Every batch, page by page; ``max_pages`` bounds the requests made."""
        after: str | None = None
        pages = 0
        while max_pages is None or pages < max_pages:
            batches, has_more = self._list_page(limit=page_size, after=after)
            pages += 1
            yield from batches
            if not batches or not has_more:
                return
            after = batches[-1].id

    def retrieve_batch(self, batch_id: str) -> Batch:
        response = self._send("GET", self._url(self.profile.batches_path, batch_id))
        return self._batch(response)

    def cancel_batch(self, batch_id: str) -> Batch:
        """Ask the server to cancel; return the batch as it then is.  Retried freely, since
        cancelling twice is harmless.

        Cancelling a batch that has already finished is not an error, on every server: orq
        answers the batch as it is, but OpenAI refuses with a 400 ("already in terminal
        status") and llama-stack with a 409.  On such a refusal the batch is retrieved, and if it
        has finished it is returned as it is (``status`` then says how it ended: ``completed``,
        ``failed``, ``expired`` or ``cancelled``); if it has not, the refusal is raised.
        """
        try:
            response = self._send("POST", self._url(self.profile.batches_path, batch_id, "cancel"))
        except ApiError as refusal:
            if refusal.status not in _CANCEL_REFUSALS:
                raise
            batch = self.retrieve_batch(batch_id)
            if not batch.is_terminal:
                raise
            logger.info(
                "batch %s had already ended (%s): nothing to cancel", batch_id, batch.status
            )
            return batch
        return self._batch(response)

    def file_content(self, file_id: str) -> bytes:
        """A (small) file's bytes in memory; :meth:`download_file` saves a large one to disk."""
        kept = [io.BytesIO()]

        def fresh() -> AbstractContextManager[BinaryIO]:
            kept[0] = io.BytesIO()  # a retry starts again from nothing
            return contextlib.nullcontext(kept[0])

        self._download(self._file_content_url(file_id), fresh)
        return kept[0].getvalue()

    def download_file(
        self,
        file_id: str,
        dest: str | os.PathLike[str],
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Save a file's content to ``dest``; return the bytes written.

        Streamed (memory holds one 1 MiB chunk, whatever the file's size) and atomic: ``dest``
        appears whole or not at all, and a body cut off midway is fetched again from the start.
        OpenAI answers the bytes; orq answers ``{"download_url"}``, a presigned URL that is
        fetched with a separate session that has no Authorization header, both because the key
        must not go to a storage host and because such hosts refuse requests that carry two
        kinds of credentials.  ``progress(written, total)`` follows each attempt from 0;
        ``total`` is ``None`` when the server does not say.
        """
        if not file_id:
            raise UsageError("no file id given: the batch has no such file")
        return self._download(
            self._file_content_url(file_id), lambda: atomic_writer(dest), progress=progress
        )

    def download_results(
        self,
        batch: Batch | str,
        directory: str | os.PathLike[str],
        *,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> DownloadedResults:
        """Save a finished batch's output and error files in ``directory``, as the server
        gave them: ``{batch_id}_output.jsonl`` and ``{batch_id}_errors.jsonl``.

        ``batch`` is a batch as retrieved, or its id (then it is retrieved first).  A file the
        batch does not have (a null or empty file id: every request failed, or none did) is
        not written, and its path in the answer is ``None``.  Where the profile has a results
        route (``orq``: the router's), the files come from it; otherwise by their file ids.  Each
        file is written as :meth:`download_file` writes one; ``progress(kind, written,
        total)`` names the file, ``"output"`` or ``"errors"``.

        Raises :class:`BatchNotFinishedError` (a UsageError, exit 2) for a batch that has not
        ended: its files are not there yet.
        """
        if isinstance(batch, str):
            batch = self.retrieve_batch(batch)
        if not batch.is_terminal:
            raise BatchNotFinishedError(batch)
        folder = Path(directory)
        saved: dict[ResultKind, Path | None] = {}
        files: tuple[tuple[ResultKind, str | None], ...] = (
            ("output", batch.output_file_id),
            ("errors", batch.error_file_id),
        )
        for kind, file_id in files:
            if not file_id:
                saved[kind] = None
                continue
            dest = folder / f"{_file_safe(batch.id)}_{kind}.jsonl"
            self._download_result(batch.id, kind, file_id, dest, _tagged(progress, kind))
            saved[kind] = dest
        return DownloadedResults(batch=batch, output=saved["output"], errors=saved["errors"])

    # --- helpers of the operations --------------------------------------------------------

    def _recover_create(self, input_file_id: str, error: BatchkitError) -> Batch | None:
        """After a possibly-lost create: the batch made from ``input_file_id``, if any."""
        logger.info("the create may have reached the server (%s): looking for its batch", error)
        try:
            for batch in self.iter_batches(max_pages=_RECOVERY_PAGES):
                if batch.input_file_id == input_file_id:
                    logger.info("found batch %s: the create had succeeded", batch.id)
                    return batch
        except BatchkitError as lookup_error:
            raise NetworkError(
                f"creating the batch may have succeeded ({error}), but the batches could not be "
                f"listed to check ({lookup_error}): look for a batch with input_file_id "
                f"{input_file_id} before submitting again"
            ) from None
        return None

    def _list_page(self, *, limit: int, after: str | None) -> tuple[list[Batch], bool]:
        params = {"limit": str(limit)}
        if after:
            params["after"] = after
        response = self._send("GET", self._url(self.profile.batches_path), params=params)
        document = self._json(response)
        items = document.get("data") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise ApiError(f"the server's batch list has no data: {snippet(document)}")
        batches = [Batch.from_json(item) for item in items]
        has_more = document.get("has_more") if isinstance(document, dict) else None
        if not isinstance(has_more, bool):
            has_more = len(batches) >= limit
        return batches, has_more

    def _batch(self, response: requests.Response) -> Batch:
        return Batch.from_json(self._json(response))

    def _file_content_url(self, file_id: str) -> str:
        return self._url(self.profile.files_path, file_id, "content")

    def _download_result(
        self,
        batch_id: str,
        kind: ResultKind,
        file_id: str,
        dest: Path,
        progress: Callable[[int, int | None], None] | None,
    ) -> int:
        """One result file, by the profile's route: its file id, or the batch's results."""
        route = self.profile.results_path
        if route is None:
            return self.download_file(file_id, dest, progress=progress)
        url = self._url(self.profile.batches_path, batch_id) + route
        params = {self.profile.results_errors_param: "errors"} if kind == "errors" else None
        return self._download(url, lambda: atomic_writer(dest), params=params, progress=progress)


ResultKind = Literal["output", "errors"]


def expiry_policy(seconds: int) -> dict[str, Any]:
    """OpenAI's ``output_expires_after`` (``BatchFileExpirationAfter``) for ``seconds``."""
    return {"anchor": "created_at", "seconds": seconds}


def _file_safe(name: str) -> str:
    """``name`` as a file name: a server's id must not reach outside the chosen directory."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "_" + safe if safe.startswith(".") else safe


def _tagged(
    progress: Callable[[str, int, int | None], None] | None, kind: str
) -> Callable[[int, int | None], None] | None:
    """A one-file progress callback that reports to ``progress`` which file it is."""
    if progress is None:
        return None
    return lambda written, total: progress(kind, written, total)
