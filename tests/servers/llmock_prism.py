"""Start llmock and Prism for the integration tests, as real subprocesses on 127.0.0.1.

Each server is used as it is when its environment variable names a running one
(``.ci/run`` starts Prism early in the background, since it needs about 10 s to load the
official spec); otherwise the tests start it on a free port, wait for it with a deadline and
stop it at the end of the session.

- llmock (PyPI, in the venv): ``BATCHKIT_LLMOCK_URL``, e.g. ``http://127.0.0.1:8000``
  (the server's root: the OpenAI API is under ``/v1``, the control API under ``/_llmock``).
  ``BATCHKIT_LLMOCK_FAULTY_URL`` likewise for the instance that injects 429s and 503s.
- Prism (npm, pinned in ``.ci/package.json``, installed by ``npm ci --prefix .ci``):
  ``BATCHKIT_PRISM_URL``, e.g. ``http://127.0.0.1:4010``.  It serves
  ``../shared/specs/openai-openapi.yaml`` (relative to the repository root), whose paths have
  no ``/v1``: the ``openai`` profile's base URL is the server's root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
PRISM_BIN = REPO_ROOT / ".ci" / "node_modules" / ".bin" / "prism"
OPENAI_SPEC = REPO_ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"

LLMOCK_START_DEADLINE = 30.0
#: Prism needs about 10 s on 2 cores to load the spec; leave room for a loaded machine.
PRISM_START_DEADLINE = 120.0
STOP_DEADLINE = 10.0

#: Faults injected by the second llmock instance (issue 4).
LLMOCK_FAULTS = ("429=0.2", "503=0.2")

INSTALL_PRISM = "run `npm ci --prefix .ci` in the repository root (Node >= 18.20.1 needed)"


class ServerError(RuntimeError):
    """A test server could not be started or did not become ready in time."""


@dataclass(frozen=True)
class Server:
    """A running server: ``url`` is its root, ``log`` its captured output (None if external)."""

    name: str
    url: str
    log: Path | None = None
    started_here: bool = False

    def log_tail(self, limit: int = 2000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-limit:]


@dataclass(frozen=True)
class LlmockServer(Server):
    @property
    def openai_base_url(self) -> str:
        """The ``openai`` profile's base URL for this server."""
        return f"{self.url}/v1"

    def reset_journal(self) -> None:
        """Forget the requests seen so far (the verdict judges only what follows).

        Batches and files are kept: llmock has no way to drop them, so tests tell their
        batches apart by content (each test writes a file with its own custom_ids).
        """
        requests.post(f"{self.url}/_llmock/reset", timeout=10).raise_for_status()

    def report(self, *, strict: bool = True) -> subprocess.CompletedProcess[str]:
        """``llmock report --url URL [--strict]``: exit 0 when every client behaved."""
        command = [llmock_executable(), "report", "--url", self.url]
        if strict:
            command.append("--strict")
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@dataclass(frozen=True)
class PrismServer(Server):
    @property
    def openai_base_url(self) -> str:
        """The spec's paths have no ``/v1``: the base URL is the root."""
        return self.url


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def llmock_executable() -> str:
    """The ``llmock`` next to this Python (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).with_name("llmock")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("llmock")
    if found is None:
        raise ServerError("llmock is not installed: pip install 'llmock>=0.2.2' (or -e '.[test]')")
    return found


@contextmanager
def server_process(
    name: str,
    command: Sequence[str],
    *,
    ready: Callable[[Path], bool],
    deadline: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Path]:
    """Run ``command`` with its output in a log file until ``ready(log)``; stop it afterwards.

    Output goes to a file, not a pipe, so a chatty server (Prism logs every request) can never
    block on a full pipe.  The process gets its own session so that it and any child it
    starts are stopped together, by its own process group id.  ``env``, when given, is its
    whole environment (a server configured through variables, as llama-stack is).
    """
    log_dir = Path(tempfile.mkdtemp(prefix=f"batchkit-{name}-"))
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    try:
        end = time.monotonic() + deadline
        while not ready(log):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise ServerError(
                    f"{name} exited with code {process.returncode} before it was ready:\n{tail}"
                )
            if time.monotonic() > end:
                tail = log.read_text(errors="replace")[-2000:]
                raise ServerError(f"{name} was not ready after {deadline:.0f} s:\n{tail}")
            time.sleep(0.1)
        yield log
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_DEADLINE)


def http_ready(url: str) -> Callable[[Path], bool]:
    def ready(_log: Path) -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    return ready


def _wait_external(name: str, url: str, deadline: float) -> None:
    """A server started elsewhere (``.ci/run``) may still be loading: wait for any answer."""
    end = time.monotonic() + deadline
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException as error:
            if time.monotonic() > end:
                raise ServerError(
                    f"{name} at {url} did not answer within {deadline:.0f} s: {error}"
                ) from None
            time.sleep(0.2)


def _log_says(text: str) -> Callable[[Path], bool]:
    def ready(log: Path) -> bool:
        return text in log.read_text(errors="replace")

    return ready


@contextmanager
def llmock(
    *, env_var: str | None = "BATCHKIT_LLMOCK_URL", faults: Sequence[str] = ()
) -> Iterator[LlmockServer]:
    """An llmock server: the one ``env_var`` names, else (or with no ``env_var``) a new one on
    a free port."""
    external = os.environ.get(env_var) if env_var else None
    if external:
        _wait_external("llmock", f"{external.rstrip('/')}/health", LLMOCK_START_DEADLINE)
        yield LlmockServer("llmock", external.rstrip("/"))
        return
    port = free_port()
    command = [
        llmock_executable(),
        "serve",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--log-level",
        "warning",
    ]
    for fault in faults:
        command += ["--error-rate", fault]
    url = f"http://127.0.0.1:{port}"
    with server_process(
        "llmock", command, ready=http_ready(f"{url}/health"), deadline=LLMOCK_START_DEADLINE
    ) as log:
        yield LlmockServer("llmock", url, log, started_here=True)


def prism_command(port: int) -> list[str]:
    """How ``.ci/run`` and the fixture start Prism (also printed in failure messages)."""
    return [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port), str(OPENAI_SPEC)]


@contextmanager
def prism(*, env_var: str = "BATCHKIT_PRISM_URL") -> Iterator[PrismServer]:
    """Prism serving the official spec: the one ``env_var`` names, else a new one."""
    external = os.environ.get(env_var)
    if external:
        _wait_external("prism", external.rstrip("/"), PRISM_START_DEADLINE)
        yield PrismServer("prism", external.rstrip("/"))
        return
    if not PRISM_BIN.exists():
        raise ServerError(f"Prism is not installed ({PRISM_BIN} is missing): {INSTALL_PRISM}")
    if shutil.which("node") is None:
        raise ServerError(f"Prism needs Node.js, and `node` is not on PATH: {INSTALL_PRISM}")
    if not OPENAI_SPEC.exists():
        raise ServerError(
            f"the official spec is missing at {OPENAI_SPEC}: shared/ must sit beside the "
            "repository (as it does in CI)"
        )
    port = free_port()
    with server_process(
        "prism",
        prism_command(port),
        ready=_log_says("Prism is listening"),
        deadline=PRISM_START_DEADLINE,
        cwd=REPO_ROOT,
    ) as log:
        yield PrismServer("prism", f"http://127.0.0.1:{port}", log, started_here=True)
