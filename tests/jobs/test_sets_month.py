"""A simulated month of a differential job on a changing tree: every backup, restored with tar -G and with
backupd's own restore (full + differential, both sha256s checked), is the tree of its day, byte for byte
(content, modes, links, whole-second mtimes)."""
from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from backupd.config import load
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from backupd.restore import extract_archive, restore_set
from tests.configs import directory_source, job, local_destination, write_config
from tests.diff_trees import snapshot, tar_restore

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
DAYS = 30
MONTH_AGO = int(time.time()) - 40 * 86400


class Tree:
    """A seeded tree that changes a little every day: its mtimes are the simulated day's."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root, self.random, self.day = root, random.Random(seed), 0
        for index in range(8):
            (root / f"dir{index}/sub").mkdir(parents=True)
        for index in range(60):
            self.write(self.new_path(), self.payload())
        os.symlink("dir0", root / "link")

    def payload(self) -> bytes:
        return self.random.randbytes(self.random.choice([0, 10, 300, 5000, 70_000]))

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.is_symlink())

    def dirs(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_dir() and not p.is_symlink())

    def new_path(self) -> Path:
        folder = self.random.choice(self.dirs() or [self.root])
        return folder / f"f{self.random.randrange(10**6)}"

    def write(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)
        stamp = MONTH_AGO + self.day * 86400 + self.random.randrange(3600)
        os.utime(path, (stamp, stamp))

    def change(self) -> None:
        self.day += 1
        pick = self.random.choice
        for _ in range(3):
            self.write(pick(self.files()), self.payload())
        for _ in range(2):
            self.write(self.new_path(), self.payload())
        for _ in range(2):
            pick(self.files()).unlink()
        getattr(self, pick(["chmod", "rename_dir", "file_to_dir", "dir_to_file", "relink", "empty_dir"]))()

    def chmod(self) -> None:
        path = self.random.choice(self.files())
        os.chmod(path, 0o600 if path.stat().st_mode & 0o044 else 0o644)

    def rename_dir(self) -> None:
        folder = self.random.choice(self.dirs())
        os.rename(folder, folder.with_name(folder.name + "r"))

    def file_to_dir(self) -> None:
        path = self.random.choice(self.files())
        path.unlink()
        path.mkdir()
        self.write(path / "inside", self.payload())

    def dir_to_file(self) -> None:
        folder = self.random.choice([d for d in self.dirs() if d.parent != self.root] or self.dirs())
        shutil.rmtree(folder)
        self.write(folder, self.payload())

    def relink(self) -> None:
        (self.root / "link").unlink()
        os.symlink(self.random.choice(self.files()).relative_to(self.root), self.root / "link")

    def empty_dir(self) -> None:
        (self.root / f"empty{self.day}").mkdir()


def test_every_backup_of_a_month_restores_to_its_days_tree(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    tree = Tree(data, seed=20261201)
    config = load(write_config(tmp_path, sources={"files": directory_source(data)},
                               destinations={"local": local_destination(tmp_path / "archives")},
                               jobs={"main": job(["files"], differential=True,
                                                 full_every={"size": "1000%", "age": "60d"})}))
    history = History(config.daemon.state_dir)
    days = []
    for day in range(DAYS):
        if day:
            tree.change()
        record = Run(config=config, job=config.jobs["main"], history=history, full=day % 7 == 0).execute()
        assert record.status == "success", record.error
        days.append((record.archive, snapshot(data)))
    kinds = [archive.kind for archive, _ in days]
    assert kinds.count("full") == 5 and kinds.count("differential") == 25
    names = {archive.name: archive for archive, _ in days}
    for day, (archive, state) in enumerate(days):
        chain = [archive.base, archive.name] if archive.base else [archive.name]
        assert all(name in names for name in chain)
        target = tmp_path / f"day{day}"
        tar_restore([tmp_path / "archives" / name for name in chain], target)
        assert snapshot(target / "files") == state, f"day {day} ({archive.kind}), tar -G"
        shutil.rmtree(target)
        ours = tmp_path / f"ours{day}"
        restored(tmp_path / "archives", archive, ours)
        assert snapshot(ours / "files") == state, f"day {day} ({archive.kind}), backupd's restore"
        shutil.rmtree(ours)


def restored(folder: Path, archive, target: Path) -> None:
    """backupd's own restore of `archive` (a full, or a differential over its full), sha256s checked."""
    if not archive.base:
        with open(folder / archive.name, "rb") as stream:
            extract_archive(stream, target, expected_sha256=archive.sha256)
        return
    with open(folder / archive.base, "rb") as full, open(folder / archive.name, "rb") as differential:
        restore_set(full, differential, target, name=archive.name, full_sha256=archive.base_sha256,
                    differential_sha256=archive.sha256)
