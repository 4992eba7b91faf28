"""Bodies streamed both ways: memory holds one chunk, whatever the size of the file.

An upload is a multipart body made afresh for every attempt (:func:`multipart_file`), read
from the file through the encoder in 1 MiB pieces (:class:`LargeChunks`);
a download writes the answer's body chunk by chunk into a sink that is opened afresh for every
attempt (:data:`SinkFactory`: for a file, a new temporary file), after a look at its first bytes
for orq's ``{"download_url"}`` pointer (:func:`peek_pointer`).  The transport
(:mod:`batchkit.http`) decides when to send and retry; this module only moves the bytes.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

import orjson
import requests
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

__all__ = [
    "DOWNLOAD_CHUNK",
    "BodyFactory",
    "LargeChunks",
    "SinkFactory",
    "multipart_file",
    "peek_pointer",
    "save_body",
]

#: Upload chunk: big enough to make the encoder's per-read cost vanish, small next to 64 MB.
_UPLOAD_CHUNK = 1024 * 1024
#: Download chunk: the most a download holds in memory at once.
DOWNLOAD_CHUNK = 1024 * 1024
#: A JSON content answer longer than this is a file, not a ``{"download_url"}`` pointer.
_POINTER_MAX = 64 * 1024

#: Makes a request's body and its headers: called again for every attempt.
BodyFactory = Callable[[], tuple[Any, dict[str, str]]]
#: Opens where one attempt of a download writes: called again for every attempt.
SinkFactory = Callable[[], AbstractContextManager[BinaryIO]]


class LargeChunks:
    """Feeds a multipart stream to requests in 1 MiB pieces, with a known length.

    Given a file-like body, http.client reads it 8-16 KiB at a time, and the encoder's
    per-read bookkeeping then costs more than the loopback transfer itself (3-4x a plain
    streamed post in tests/benchmarks/bench_upload.py).  An iterable with ``__len__`` makes
    requests send our chunks as they are, with a Content-Length, not chunked encoding.
    """

    def __init__(self, stream: Any, chunk_size: int = _UPLOAD_CHUNK) -> None:
        self._stream = stream
        self._chunk_size = chunk_size

    def __len__(self) -> int:
        return int(self._stream.len)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._stream.read(self._chunk_size):
            yield chunk


def multipart_file(
    handle: BinaryIO,
    name: str,
    *,
    purpose: str,
    progress: Callable[[int, int], None] | None,
) -> BodyFactory:
    """The Files API's upload body for the open file ``handle``, streamed from disk.

    ``progress(sent, total)`` counts multipart bytes; each attempt starts again from 0.
    """
    # One boundary for every attempt, so that a retry sends the very same bytes: servers
    # (and llmock's verdict) recognise a retry by its body.
    boundary = uuid.uuid4().hex

    def build() -> tuple[Any, dict[str, str]]:
        # A new encoder per attempt: a streamed body can be read only once.
        handle.seek(0)
        encoder = MultipartEncoder(
            fields=[("purpose", purpose), ("file", (name, handle, "application/jsonl"))],
            boundary=boundary,
        )
        monitor = MultipartEncoderMonitor(encoder)
        if progress is not None:
            monitor.callback = lambda m: progress(m.bytes_read, m.len)
        return LargeChunks(monitor), {"Content-Type": monitor.content_type}

    return build


def peek_pointer(response: requests.Response, chunks: Iterator[bytes]) -> tuple[bytes, str | None]:
    """The first bytes of a file's content answer, and its ``download_url`` if it is one.

    orq answers a small JSON document pointing at the file; OpenAI answers the file.  Only a
    JSON answer that ends within :data:`_POINTER_MAX` bytes is read whole and looked into;
    whatever was read is returned, to be written before the rest.
    """
    if "json" not in response.headers.get("Content-Type", "").lower():
        return b"", None
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) > _POINTER_MAX:
            return head, None
    try:
        document = orjson.loads(head)
    except orjson.JSONDecodeError:
        return head, None
    link = document.get("download_url") if isinstance(document, dict) else None
    return head, link if isinstance(link, str) and link else None


def save_body(
    response: requests.Response,
    head: bytes,
    chunks: Iterator[bytes],
    open_sink: SinkFactory,
    progress: Callable[[int, int | None], None] | None,
) -> int:
    """Write ``head`` and the rest of the body to a fresh sink; report ``(written, total)``."""
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    total = int(length) if length.isdigit() and not encoded else None
    written = 0
    # A network error while copying (requests' are OSErrors without an errno) passes through
    # the sink as it is: the sink removes what was written and leaves the retry to the caller.
    with open_sink() as sink:
        for chunk in itertools.chain((head,), chunks):
            sink.write(chunk)
            written += len(chunk)
            if progress is not None and chunk:
                progress(written, total)
    return written
