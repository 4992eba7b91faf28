"""Shared pytest fixtures.  Each block names its owner; append, never replace."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

# --- Ctrl-C tests (owner: cli) ------------------------------------------------------------
# A shell starts background jobs with SIGINT ignored, and a process started so passes that on
# to every batchkit the tests start, whose Ctrl-C tests would then see nothing happen.  A
# handler here (not SIG_IGN) is reset to the default in each child at exec, as for a test run
# started at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# --- llmock and Prism (owner: cli) -------------------------------------------------------
from tests.servers import llmock_prism


@pytest.fixture(scope="session")
def llmock_server() -> Iterator[llmock_prism.LlmockServer]:
    """llmock without faults: ``BATCHKIT_LLMOCK_URL`` or a new one on a free port."""
    try:
        with llmock_prism.llmock() as server:
            yield server
    except llmock_prism.ServerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def llmock_faulty_server() -> Iterator[llmock_prism.LlmockServer]:
    """llmock injecting 429s and 503s (20 % each): ``BATCHKIT_LLMOCK_FAULTY_URL`` or a new one."""
    try:
        with llmock_prism.llmock(
            env_var="BATCHKIT_LLMOCK_FAULTY_URL", faults=llmock_prism.LLMOCK_FAULTS
        ) as server:
            yield server
    except llmock_prism.ServerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def prism_server() -> Iterator[llmock_prism.PrismServer]:
    """Prism serving the official OpenAI spec: ``BATCHKIT_PRISM_URL`` or a new one.

    Not installed means a failure that says to run ``npm ci --prefix .ci``, never a skip.
    """
    try:
        with llmock_prism.prism() as server:
            yield server
    except llmock_prism.ServerError as error:
        pytest.fail(str(error), pytrace=False)


# --- the fake orq API (owner: client) ----------------------------------------------------
# `fake_orq`: a fresh stateful fake of CONTRACT.md section 4 on 127.0.0.1 per test, with
# fault injection (tests/servers/fake_orq.py).  Imported here so every test module sees it.
from tests.servers.fake_orq import fake_orq  # noqa: E402, F401

# --- llama-stack (owner: llama-stack) ----------------------------------------------------
from tests.servers.llama_stack import LlamaStackServer, llama_stack  # noqa: E402


@pytest.fixture(scope="session")
def llama_stack_server() -> Iterator[LlamaStackServer]:
    """llama-stack (a real Files + Batches server) with its own llmock upstreams.

    Not installed means a failure that gives the install command, never a skip.
    """
    try:
        with llama_stack() as server:
            yield server
    except llmock_prism.ServerError as error:
        pytest.fail(str(error), pytrace=False)
