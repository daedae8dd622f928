"""Round trips of differentials made by the real writer (in-process runs of a differential job, local
destination) through our restore of full + differential: each step's tree comes back exactly, and a
missing or wrong full, or a corrupted differential, restores nothing."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backupd.restore import RestoreError, restore_set
from tests.archive.helpers import tree_state
from tests.jobs.test_sets import configure, run

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


def start(data: Path) -> None:
    files = {"docs/a.txt": b"alpha\n", "docs/deep/b.txt": b"beta\n" * 500, "gone.txt": b"gone\n",
             "old-dir/x": b"x\n", "old-dir/sub/y": b"y\n", "flip": b"a file first\n", "app.log": b"line\n" * 30_000,
             "perm.txt": b"p\n", "same.bin": os.urandom(100_000)}
    for rel, body in files.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(body)
    os.symlink("docs/a.txt", data / "link")
    os.symlink("docs", data / "dir-link")
    (data / "empty-dir").mkdir()


def edit(data: Path) -> None:
    (data / "docs/a.txt").write_bytes(b"alpha, edited\n")
    (data / "new.txt").write_bytes(b"new\n")
    (data / "new-dir/deeper").mkdir(parents=True)
    (data / "new-dir/deeper/z").write_bytes(b"z\n")
    (data / "gone.txt").unlink()
    shutil.rmtree(data / "old-dir")
    os.rename(data / "docs/deep", data / "docs/renamed")
    with open(data / "app.log", "ab") as log:
        log.write(b"appended\n" * 2000)


def to_folder(data: Path) -> None:
    (data / "flip").unlink()
    (data / "flip").mkdir()
    (data / "flip/inside").write_bytes(b"now a folder\n")
    os.chmod(data / "perm.txt", 0o600)
    (data / "link").unlink()
    os.symlink("new.txt", data / "link")
    os.chmod(data / "empty-dir", 0o700)


def back_to_file(data: Path) -> None:
    shutil.rmtree(data / "flip")
    (data / "flip").write_bytes(b"a file again\n")
    (data / "dir-link").unlink()
    (data / "dir-link").mkdir()


def new_inodes(data: Path) -> None:
    """The whole tree copied and put back (every inode new, contents, modes and mtimes kept)."""
    copy = data.with_name("copy")
    shutil.copytree(data, copy, symlinks=True, copy_function=shutil.copy2)
    shutil.rmtree(data)
    os.rename(copy, data)


@pytest.fixture
def job(tmp_path):
    config = configure(tmp_path, delta_files=["*.log"])
    start(tmp_path / "data")
    full = run(config)
    assert full.archive.kind == "full"
    return config, full


def restored(tmp_path: Path, full, differential, out: str) -> Path:
    archives = tmp_path / "archives"
    with open(archives / full.archive.name, "rb") as base, open(archives / differential.archive.name, "rb") as diff:
        restore_set(base, diff, tmp_path / out, name=differential.archive.name, full_sha256=full.archive.sha256,
                    differential_sha256=differential.archive.sha256)
    return tmp_path / out / "files"


def test_every_kind_of_change_round_trips_through_the_real_writer(job, tmp_path):
    config, full = job
    data = tmp_path / "data"
    for step, change in enumerate((edit, to_folder, back_to_file, new_inodes)):
        change(data)
        differential = run(config)
        assert differential.archive.kind == "differential" and differential.archive.base == full.archive.name
        assert tree_state(restored(tmp_path, full, differential, f"out-{step}")) == tree_state(data), change.__name__
    assert differential.archive.size < full.archive.size // 10     # new inodes alone re-dump nothing


def test_a_missing_full_and_a_corrupted_differential_restore_nothing(job, tmp_path):
    config, full = job
    edit(tmp_path / "data")
    differential = run(config)
    archives = tmp_path / "archives"
    other = tmp_path / "other.tar.zst"
    shutil.copy(archives / differential.archive.name, other)        # not a full at all
    with pytest.raises(RestoreError, match="is not a full backup"):
        with open(other, "rb") as base, open(archives / differential.archive.name, "rb") as diff:
            restore_set(base, diff, tmp_path / "out", name=differential.archive.name)
    path = archives / differential.archive.name
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x08
    path.write_bytes(bytes(data))
    with pytest.raises(RestoreError, match="does not verify.*nothing restored"):
        restored(tmp_path, full, differential, "out")
    assert not (tmp_path / "out").exists()
