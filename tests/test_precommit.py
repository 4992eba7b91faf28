"""The ``batchkit-validate`` pre-commit hook, run by pre-commit itself on real commits.

A temporary git repository's ``.pre-commit-config.yaml`` points at this checkout (its HEAD
commit, so the hook definition tested is the committed one); pre-commit clones it, installs it
into a hook venv with pip (offline, from a wheelhouse of what this venv has installed) and runs
it from git's pre-commit hook on every ``git commit``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, jsonl, request
from tests.servers.offline_pip import build_wheelhouse, offline_env
from tests.test_action import readme_yaml

HOOK = "batchkit-validate"


def git(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def head_sha() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def write_config(repo: Path, args: list[str] | None = None) -> None:
    """The snippet the README gives, with ``repo`` this checkout and ``rev`` its HEAD."""
    config = readme_yaml(HOOK)
    (entry,) = config["repos"]
    entry.update(repo=str(REPO), rev=head_sha())
    (hook,) = entry["hooks"]
    assert hook == {"id": HOOK}
    if args is not None:
        hook["args"] = args
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def user_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty git repository with pre-commit installed, and the environment to commit in."""
    env = offline_env(build_wheelhouse(tmp_path / "wheelhouse"))
    env.update(
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-cache"),
        VIRTUALENV_NO_PERIODIC_UPDATE="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        NO_COLOR="1",
    )
    repo = tmp_path / "user-repo"
    repo.mkdir()
    assert git("init", "-q", cwd=repo, env=env).returncode == 0
    install = subprocess.run(
        [sys.executable, "-m", "pre_commit", "install"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return repo, env


def committed(repo: Path, env: dict[str, str]) -> list[str]:
    """The paths in the repository's HEAD commit."""
    return git("ls-tree", "-r", "--name-only", "HEAD", cwd=repo, env=env).stdout.split()


def commit(repo: Path, env: dict[str, str], *paths: str) -> subprocess.CompletedProcess[str]:
    """``git add PATHS && git commit``: git's pre-commit hook runs pre-commit."""
    added = git("add", *paths, cwd=repo, env=env)
    assert added.returncode == 0, added.stderr
    return git("commit", "-q", "-m", f"add {' '.join(paths)}", cwd=repo, env=env)


@pytest.mark.slow
def test_hook_passes_a_valid_file_and_stops_an_invalid_one(
    user_repo: tuple[Path, dict[str, str]],
) -> None:
    repo, env = user_repo
    write_config(repo)
    (repo / "good.jsonl").write_bytes(jsonl(request("a"), request("b")))
    passed = commit(repo, env, ".pre-commit-config.yaml", "good.jsonl")
    output = passed.stdout + passed.stderr
    assert passed.returncode == 0, output
    assert "batchkit validate" in output and "Passed" in output

    (repo / "bad.jsonl").write_bytes(jsonl(request("a"), request("b", url="/chat/completions")))
    failed = commit(repo, env, "bad.jsonl")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Failed" in output
    assert "bad.jsonl:2: invalid_url: " in output and 'missing "/v1"' in output
    assert "bad.jsonl" not in committed(repo, env)


@pytest.mark.slow
def test_hook_is_strict_by_default_and_its_args_can_be_replaced(
    user_repo: tuple[Path, dict[str, str]],
) -> None:
    repo, env = user_repo
    write_config(repo)
    # Valid, but with a warning (a blank line): only --strict fails it.
    (repo / "warned.jsonl").write_bytes(jsonl(request("a"), b"", request("b")))
    strict = commit(repo, env, ".pre-commit-config.yaml", "warned.jsonl")
    assert strict.returncode != 0
    assert "warned.jsonl:2: warning: blank_line: " in strict.stdout + strict.stderr
    assert "warned.jsonl" not in committed(repo, env)

    write_config(repo, args=["--profile", "openai"])
    relaxed = commit(repo, env, ".pre-commit-config.yaml", "warned.jsonl")
    output = relaxed.stdout + relaxed.stderr
    assert relaxed.returncode == 0, output
    assert "Passed" in output
    assert "warned.jsonl" in committed(repo, env)
