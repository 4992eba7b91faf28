"""Start llama-stack for the integration tests: a real, independent implementation of the
OpenAI Files and Batches APIs, as a subprocess on 127.0.0.1 with llmock upstreams of its own.

llama-stack runs each batch line against an OpenAI-compatible upstream.  It gets two llmocks
(run config: ``llama_stack.yaml`` beside this file): one that answers every request and one
that fails every request with a 500, chosen per batch by the model (:data:`MODEL`,
:data:`FAILING_MODEL`).  They are not the session's ``llmock_server``: llama-stack's traffic
must not count in llmock's verdict on batchkit.

llama-stack needs Python >= 3.12, so it lives in a venv of its own: ``BATCHKIT_LLAMA_STACK_VENV``,
else ``.venv-llama`` in the repository root (:data:`INSTALL_LLAMA_STACK` makes it).  Missing
means a :class:`~tests.servers.llmock_prism.ServerError` that says how to install it: the
tests fail, never skip.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers.llmock_prism import (
    REPO_ROOT,
    Server,
    ServerError,
    free_port,
    http_ready,
    llmock,
    server_process,
)

VENV_ENV_VAR = "BATCHKIT_LLAMA_STACK_VENV"
DEFAULT_VENV = REPO_ROOT / ".venv-llama"
RUN_CONFIG = Path(__file__).with_name("llama_stack.yaml")

#: The models registered in the run config: ``<provider_id>/<upstream model>``.
MODEL = "openai/gpt-4o-mini"
FAILING_MODEL = "failing/gpt-4o-mini"
#: The fault of the ``failing`` upstream: every request answers 500.
FAILING_UPSTREAM_FAULTS = ("500=1",)

#: About 3 s on 2 idle cores; leave room for a loaded machine.
LLAMA_STACK_START_DEADLINE = 90.0

INSTALL_LLAMA_STACK = ".ci/install-llama-stack"


@dataclass(frozen=True)
class LlamaStackServer(Server):
    @property
    def openai_base_url(self) -> str:
        """The ``llama-stack`` profile's base URL here: the API is under ``/v1``."""
        return f"{self.url}/v1"


def llama_executable() -> Path:
    """The ``llama`` command of the llama-stack venv; a ServerError saying how to install it."""
    configured = os.environ.get(VENV_ENV_VAR)
    venv = Path(configured) if configured else DEFAULT_VENV
    executable = venv / "bin" / "llama"
    if not executable.exists():
        where = f"{VENV_ENV_VAR}={configured}" if configured else f"{DEFAULT_VENV} (the default)"
        raise ServerError(
            f"llama-stack is not installed: no {executable} in the venv {where}. It needs "
            f"Python >= 3.12; in the repository root run: {INSTALL_LLAMA_STACK} "
            f"(or set {VENV_ENV_VAR} to a venv that has llama-stack 0.7.3)"
        )
    return executable


@contextmanager
def llama_stack() -> Iterator[LlamaStackServer]:
    """llama-stack on a free port with its two llmock upstreams; all stopped at the end.

    Its files and sqlite stores go in a temporary directory that is removed afterwards, so
    every session starts with no files and no batches.
    """
    executable = llama_executable()
    with (
        llmock(env_var=None) as upstream,
        llmock(env_var=None, faults=FAILING_UPSTREAM_FAULTS) as failing,
        tempfile.TemporaryDirectory(prefix="batchkit-llama-stack-data-") as data,
    ):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "BATCHKIT_LLAMA_STACK_DIR": data,
            "BATCHKIT_LLAMA_STACK_UPSTREAM": upstream.openai_base_url,
            "BATCHKIT_LLAMA_STACK_FAILING_UPSTREAM": failing.openai_base_url,
        }
        command = [str(executable), "stack", "run", str(RUN_CONFIG), "--port", str(port)]
        with server_process(
            "llama-stack",
            command,
            ready=http_ready(f"{url}/v1/health"),
            deadline=LLAMA_STACK_START_DEADLINE,
            cwd=Path(data),
            env=env,
        ) as log:
            yield LlamaStackServer("llama-stack", url, log, started_here=True)
