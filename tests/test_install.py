"""The release: the wheel carries everything (installed into a fresh venv, the command works
from another directory, schemas included), ``--version`` says how fresh the provider facts are,
and the version lives in one place that the metadata and the changelog follow."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from datetime import date
from pathlib import Path

import pytest
import yaml

from batchkit import __version__
from batchkit.limits import FACTS_CONFIRMED
from tests.helpers import REPO, SAMPLE_FILES, SAMPLES
from tests.servers.cli import clean_env, run_batchkit
from tests.servers.offline_pip import build_wheelhouse, copy_source, offline_env


def test_version_names_the_date_the_provider_facts_were_confirmed() -> None:
    result = run_batchkit("--version", env=clean_env())
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == f"batchkit, version {__version__}"
    assert FACTS_CONFIRMED in second and "limits" in second
    assert date.fromisoformat(FACTS_CONFIRMED) <= date.today()


def metadata() -> configparser.SectionProxy:
    """setup.cfg's [metadata]."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config["metadata"]


def classifiers() -> list[str]:
    return [line.strip() for line in metadata()["classifiers"].splitlines() if line.strip()]


def classified_pythons(lines: list[str]) -> list[str]:
    prefix = "Programming Language :: Python :: "
    return [line[len(prefix) :] for line in lines if re.fullmatch(r".* :: 3\.\d+", line)]


def test_the_version_lives_in_one_place_and_the_changelog_follows_it() -> None:
    assert metadata()["version"] == "attr: batchkit.__version__"
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert "[Keep a Changelog]" in changelog
    newest = re.search(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)
    assert newest and newest[1] == __version__


def test_classifiers_and_the_ci_workflow_name_the_same_pythons() -> None:
    lines = classifiers()
    for wanted in ("Typing :: Typed", "License :: OSI Approved :: MIT License"):
        assert wanted in lines
    assert any(line.startswith("Development Status :: ") for line in lines)
    assert any(line.startswith("Operating System :: ") for line in lines)
    assert classified_pythons(lines) == ["3.10", "3.11", "3.12", "3.13"]
    assert "MIT License" in (REPO / "LICENSE").read_text()

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu")
    assert job["strategy"]["matrix"]["python"] == classified_pythons(lines)
    assert job["steps"][-1]["run"] == "bash .ci/run"


def built_wheel(directory: Path, wheelhouse: Path) -> Path:
    """The wheel CI built and checked with twine (``BATCHKIT_WHEEL``, set by .ci/run), else one
    built here, as CI builds it, from a copy of the project files."""
    if os.environ.get("BATCHKIT_WHEEL"):
        return Path(os.environ["BATCHKIT_WHEEL"])
    source = copy_source(directory / "source")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(directory / "dist"), source],
        capture_output=True,
        text=True,
        env=offline_env(wheelhouse),
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    shutil.rmtree(source)  # nothing may be read from the source tree any more
    (wheel,) = (directory / "dist").glob("*.whl")
    return wheel


@pytest.mark.slow
def test_built_wheel_installs_and_works_outside_the_checkout(tmp_path: Path) -> None:
    wheelhouse = build_wheelhouse(tmp_path / "wheelhouse")
    wheel = built_wheel(tmp_path, wheelhouse)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_file,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata_file).decode().split("\n\n", 1)[0].splitlines()
        (licence,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        assert "MIT License" in archive.read(licence).decode()
    assert f"Version: {__version__}" in headers
    assert [line.split(": ", 1)[1] for line in headers if line.startswith("Classifier: ")] == (
        classifiers()
    )
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        env=offline_env(wheelhouse),
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in SAMPLE_FILES:
        shutil.copy(SAMPLES / name, elsewhere / name)
    shutil.copy(SAMPLES / "invalid" / "every_mistake.jsonl", elsewhere / "bad.jsonl")
    batchkit = str(env_dir / "bin" / "batchkit")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*args], cwd=elsewhere, capture_output=True, text=True, env=clean_env(), timeout=60
        )

    version = run(batchkit, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"batchkit, version {__version__}\n")
    assert f"last confirmed {FACTS_CONFIRMED}" in version.stdout
    good = run(batchkit, "validate", "--strict", *SAMPLE_FILES)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run(batchkit, "validate", "bad.jsonl")
    assert bad.returncode == 1
    assert "bad.jsonl:12: invalid_request: body.messages[0].role" in bad.stdout
    where = run(
        str(python), "-c", "import batchkit.schemas as s; print(s.schema_path('embeddings.json'))"
    )
    assert str(env_dir) in where.stdout and "site-packages" in where.stdout
    assert sys.prefix not in where.stdout
