"""pip without the internet: a wheelhouse repacked from the running environment.

The install tests (the built wheel in a fresh venv, the pre-commit hook, the GitHub Action's
install step) run ``pip install`` for real, which would otherwise fetch batchkit's dependencies
and its build backend from an index.  Tests reach only 127.0.0.1, so this module rebuilds a
wheel of each of those distributions from the copy this interpreter already has installed (its
files, as listed in its RECORD), and :func:`offline_env` points pip at that folder alone.  The
wheels fit this interpreter only, which is the one every such test creates its venvs with.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.helpers import REPO

#: The distribution this checkout installs.
PROJECT = "batchkit-jsonl"
#: Copied to the wheelhouse besides the project's dependencies: pyproject.toml's build backend.
BUILD_BACKEND = ("setuptools", "wheel")
#: What an installer writes into a .dist-info folder; not part of a wheel.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}
#: Left out of a source copy: local venvs, caches and build leftovers.
_NOT_SOURCE = shutil.ignore_patterns(
    ".venv*", ".git", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
)


def copy_source(destination: Path) -> Path:
    """A copy of the project files, so that a build cannot see this checkout's build/ or
    egg-info leftovers (and leaves none here)."""
    shutil.copytree(REPO, destination, ignore=_NOT_SOURCE)
    return destination


def offline_env(wheelhouse: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment in which every pip (build isolation included) installs from
    ``wheelhouse`` only: no index, no pip configuration file of this machine."""
    env = {key: value for key, value in (base or os.environ).items() if not key.startswith("PIP_")}
    env.update(
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
    )
    return env


def build_wheelhouse(destination: Path, roots: Iterable[str] = (PROJECT, *BUILD_BACKEND)) -> Path:
    """Wheels of ``roots``' installed dependencies (``PROJECT`` itself excluded) and of the
    build backend, in ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for dist in _closure(roots):
        if _canonical(dist.metadata["Name"]) != PROJECT:
            repack(dist, destination)
    return destination


def repack(dist: metadata.Distribution, directory: Path) -> Path:
    """A wheel made from an installed distribution's files, with a fresh RECORD."""
    files = [path for path in dist.files or () if _belongs_in_wheel(path)]
    info_dir = next(path.parts[0] for path in files if path.parts[0].endswith(".dist-info"))
    target = directory / _wheel_name(dist)
    records: list[str] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            data = Path(str(dist.locate_file(path))).read_bytes()
            archive.writestr(path.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{path.as_posix()},sha256={digest.decode()},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        archive.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return target


def _belongs_in_wheel(path: metadata.PackagePath) -> bool:
    """Inside site-packages, not bytecode, not written by the installer."""
    if path.parts[0] == ".." or "__pycache__" in path.parts:
        return False
    in_info = len(path.parts) == 2 and path.parts[0].endswith(".dist-info")
    return not (in_info and path.name in _INSTALLER_FILES)


def _wheel_name(dist: metadata.Distribution) -> str:
    """``name-version-py-abi-platform.whl`` from the tags its WHEEL file recorded."""
    wheel_file = dist.read_text("WHEEL") or ""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_file.splitlines() if line.startswith("Tag:")
    ]
    if not tags:
        raise RuntimeError(f"{dist.metadata['Name']} has no WHEEL tags: it cannot be repacked")
    python, abi, platform = (
        ".".join(sorted({tag.split("-")[part] for tag in tags})) for part in range(3)
    )
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    return f"{name}-{dist.version}-{python}-{abi}-{platform}.whl"


def _closure(roots: Iterable[str]) -> Iterator[metadata.Distribution]:
    """The installed distributions ``roots`` need, each once (extras are not followed)."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment["extra"] = ""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = _canonical(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        yield dist
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                pending.append(requirement.name)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
