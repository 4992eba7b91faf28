"""Run ``batchkit`` as a user would: a real subprocess, its own environment, a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from tests.helpers import jsonl, request

#: Variables that would change which server or key a run uses: never inherited.
_SETTINGS = (
    "BATCHKIT_PROFILE",
    "BATCHKIT_BASE_URL",
    "ORQ_API_KEY",
    "OPENAI_API_KEY",
    "GITHUB_OUTPUT",
)
RUN_DEADLINE = 180.0


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _SETTINGS}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run_batchkit(
    *args: str, env: Mapping[str, str], timeout: float = RUN_DEADLINE
) -> subprocess.CompletedProcess[str]:
    """``python -m batchkit ARGS``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "batchkit", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.stdout, f"no stdout; stderr: {result.stderr}"
    return orjson.loads(result.stdout)


def batch_file(directory: Path, count: int = 3, *, name: str = "requests.jsonl") -> Path:
    """A valid chat batch file whose bytes (so sha256) are unique to this call."""
    tag = uuid.uuid4().hex[:12]
    path = directory / name
    path.write_bytes(jsonl(*(request(f"{tag}-{index}") for index in range(count))))
    return path


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
