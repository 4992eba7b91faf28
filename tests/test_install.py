"""The release: the wheel carries everything (installed into a fresh venv, the command works
from another directory, schemas included), ``--version`` says how fresh the provider facts are,
and the version lives in one place that the metadata and the changelog follow."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from datetime import date
from pathlib import Path

import pytest

from batchkit import __version__
from batchkit.limits import FACTS_CONFIRMED
from tests.helpers import REPO, SAMPLES
from tests.servers.cli import clean_env, run_batchkit


def test_version_names_the_date_the_provider_facts_were_confirmed() -> None:
    result = run_batchkit("--version", env=clean_env())
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == f"batchkit, version {__version__}"
    assert FACTS_CONFIRMED in second and "limits" in second
    assert date.fromisoformat(FACTS_CONFIRMED) <= date.today()


@pytest.mark.slow
def test_non_editable_install_validates_from_another_directory(tmp_path: Path) -> None:
    source = tmp_path / "source"
    # A copy of the tracked project files, so that the build cannot see this checkout's
    # build/ or egg-info leftovers and the schemas must come from the package data.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv*",
            ".git",
            "node_modules",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*cache",
        ),
    )
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    shutil.rmtree(source)  # nothing may be read from the source tree any more

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("chat.jsonl", "embeddings.jsonl", "completions.jsonl"):
        shutil.copy(SAMPLES / name, elsewhere / name)
    shutil.copy(SAMPLES / "invalid" / "every_mistake.jsonl", elsewhere / "bad.jsonl")
    command = [str(env_dir / "bin" / "batchkit"), "validate"]
    good = subprocess.run(
        [*command, "chat.jsonl", "embeddings.jsonl", "completions.jsonl"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run(
        [*command, "bad.jsonl"], cwd=elsewhere, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert "bad.jsonl:12: invalid_request: body.messages[0].role" in bad.stdout
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import batchkit.schemas as s; print(s.schema_path('embeddings.json'))",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert str(env_dir) in where.stdout and "site-packages" in where.stdout
    assert sys.prefix not in where.stdout
