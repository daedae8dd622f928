"""A kill while a local destination stores an archive leaves `.partial-` files and a sidecar without its
archive; clean_debris() (called by the daemon at start) and the next store remove them and nothing else
(issue 9, defect 3)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from backupd.config import LocalDestinationConfig
from backupd.destinations.local import LocalDestination
from tests.destinations.helpers import make_archive

MiB = 1 << 20
FOREIGN = {"notes.txt": "a user's file", "other-tool.tar.zst": "no sidecar: not backupd's",
           ".partial-notes.txt": "another tool's partial file",
           "foreign.tar.zst.meta.json": json.dumps({"tool": "someone else's sidecar"})}


def local(root: Path) -> LocalDestination:
    return LocalDestination(LocalDestinationConfig(name="disk", path=root))


def spool_on_another_file_system(tmp_path: Path) -> Path:
    """A directory on a file system other than tmp_path's, so the destination copies instead of linking."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own to store by copying")
    return Path(os.path.realpath(shm))


@pytest.fixture(params=["link", "copy"])
def spool(request, tmp_path):
    """Where the archive is stored from: the destination's file system (hard link) or another one (copy)."""
    if request.param == "link":
        yield tmp_path
        return
    directory = spool_on_another_file_system(tmp_path) / f"backupd-test-{os.getpid()}-{id(request)}"
    directory.mkdir()
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


def killed_while_storing(root: Path, archive) -> None:
    """Store `archive` in a child process that SIGKILLs itself at the first progress report."""
    pid = os.fork()
    if pid == 0:
        try:
            local(root).store(*archive, progress=lambda done, total: os.kill(os.getpid(), signal.SIGKILL))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def plant_foreign(root: Path) -> None:
    for name, text in FOREIGN.items():
        (root / name).write_text(text)
    (root / ".partial-a-directory.tar.zst").mkdir()


def foreign_intact(root: Path) -> bool:
    return (all((root / name).read_text() == text for name, text in FOREIGN.items())
            and (root / ".partial-a-directory.tar.zst").is_dir())


@pytest.mark.parametrize("cleaner", ["clean_debris", "next store"])
def test_a_kill_mid_store_leaves_debris_that_is_removed_and_nothing_else(tmp_path, spool, cleaner):
    root = tmp_path / "store"
    root.mkdir()
    plant_foreign(root)
    killed = make_archive(spool, 6 * MiB, name="nightly-1.tar.zst")
    killed_while_storing(root, killed)
    debris = {f".partial-{killed[1].name}", f"{killed[1].name}.meta.json"}
    assert debris <= {p.name for p in root.iterdir()}       # what the kill left

    destination = local(root)
    if cleaner == "clean_debris":
        assert sorted(destination.clean_debris()) == sorted(debris)
        assert destination.list() == []
    else:
        stored = make_archive(spool, 1000, name="nightly-2.tar.zst")
        destination.store(*stored)
        assert [b.name for b in destination.list()] == ["nightly-2.tar.zst"]
    assert not debris & {p.name for p in root.iterdir()}
    assert foreign_intact(root)


def test_clean_debris_leaves_a_store_in_progress_alone(tmp_path):
    root = tmp_path / "store"
    path, meta = make_archive(tmp_path, 1000, name="nightly-1.tar.zst")
    seen = []

    def clean_meanwhile(done, total):       # another thread or process cleaning while this one stores
        seen.append(local(root).clean_debris())
    local(root).store(path, meta, progress=clean_meanwhile)
    assert seen == [[]]
    assert [b.name for b in local(root).list()] == [meta.name]
    assert local(root).clean_debris() == []


def test_clean_debris_of_a_destination_never_used_creates_nothing(tmp_path):
    assert local(tmp_path / "absent").clean_debris() == []
    assert not (tmp_path / "absent").exists()
