"""atomic_writer: the target appears whole or not at all, and says why it could not be written."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from batchkit.atomic import atomic_writer
from batchkit.errors import BatchkitError


def test_success_replaces_the_target_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.jsonl"
    with atomic_writer(target) as out:
        out.write(b"new\n")
        assert not target.exists()  # nothing under the name until the end
    assert target.read_bytes() == b"new\n"
    assert [path.name for path in target.parent.iterdir()] == ["out.jsonl"]


def test_a_disk_error_is_a_batchkit_error_and_the_old_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")
    with (
        pytest.raises(BatchkitError, match=r"cannot write .*No space left"),
        atomic_writer(target) as out,
    ):
        out.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_bytes() == b"old\n"
    assert [path.name for path in tmp_path.iterdir()] == ["out.jsonl"]


def test_an_error_that_is_not_the_disks_passes_through(tmp_path: Path) -> None:
    """A network error while copying a download (requests' errors are OSErrors with no
    errno) must reach the caller as itself, so that the download can be retried."""

    class Broken(OSError):
        pass

    target = tmp_path / "out.jsonl"
    with pytest.raises(Broken), atomic_writer(target) as out:
        out.write(b"partial")
        raise Broken("the connection broke off")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_be_made_is_a_batchkit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BatchkitError, match="cannot write"), atomic_writer(blocker / "out.jsonl"):
        pass
