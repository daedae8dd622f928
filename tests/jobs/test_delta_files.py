"""delta_files: a grown log and a file changed in place stored as their changed ranges, and the README's
standard-tool restore."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from backupd.archive.delta import Extents
from backupd.config import load
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from backupd.restore import restore_set
from tests.configs import directory_source, job, local_destination, write_config
from tests.diff_trees import members, snapshot

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
README = Path(__file__).resolve().parents[2] / "README.md"
MiB = 1 << 20


def configure(tmp_path, **keys):
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path, sources={"files": directory_source(data)},
                        destinations={"local": local_destination(tmp_path / "var" / "archives")},
                        jobs={"main": job(["files"], differential=True, **keys)})
    return load(path)


def run(config):
    return Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir)).execute()


def log_lines(count: int, seed: int) -> bytes:
    return b"".join(b"%08d GET /item/%d 200 %d\n" % (n, (n * 7919 + seed) % 100003, n % 977)
                    for n in range(seed, seed + count))


def diff_manifest(archive: Path) -> dict:
    out = subprocess.run(f"zstd -qdc '{archive}' | tar -xO MANIFEST.json", shell=True, check=True,
                         capture_output=True).stdout
    return json.loads(out)


def readme_blocks() -> list[str]:
    section = README.read_text().split("\n## Differential backups\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_a_grown_log_and_a_file_changed_in_place_restore_with_the_readme_commands(tmp_path):
    config = configure(tmp_path, delta_files=["*.log", "*.db"])
    data = tmp_path / "data"
    (data / "logs/app.log").write_bytes(log_lines(200_000, 0))
    (data / "notes.txt").write_text("notes")
    (data / "app.db").write_bytes(os.urandom(5 * MiB))
    full = run(config)
    with open(data / "logs/app.log", "ab") as log:
        log.write(log_lines(5_000, 200_000))
    (data / "notes.txt").write_text("notes, changed")
    with open(data / "app.db", "r+b") as db:          # one page in the third block, and one more block at the end
        db.seek(2 * MiB + 4096)
        db.write(b"P" * 4096)
        db.seek(0, os.SEEK_END)
        db.write(os.urandom(MiB))
    diff = run(config)
    assert (full.archive.kind, diff.archive.kind) == ("full", "differential")
    archive = tmp_path / "var/archives" / diff.archive.name
    old_size = len(log_lines(200_000, 0))
    assert f".backupd-delta/files/logs/app.log@{old_size}" in members(archive)
    assert "files/logs/app.log" not in members(archive)
    entry = next(e for e in diff_manifest(archive)["members"] if e["name"] == "files/logs/app.log")
    assert entry["size"] == (data / "logs/app.log").stat().st_size
    assert [(e["offset"], e["size"]) for e in entry["delta"]["extents"]] == [(old_size, len(log_lines(5_000, 200_000)))]
    database = next(e for e in diff_manifest(archive)["members"] if e["name"] == "files/app.db")
    assert [(e["offset"], e["size"]) for e in database["delta"]["extents"]] == [(2 * MiB, MiB), (5 * MiB, MiB)]
    assert os.path.getsize(archive) < 2.2 * MiB + 100_000
    for block in readme_blocks():
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"README block failed:\n{block}\n{done.stdout}{done.stderr}"
    restored = tmp_path / "var/restore-set/files"
    assert (restored / "logs/app.log").read_bytes() == (data / "logs/app.log").read_bytes()
    assert (restored / "app.db").read_bytes() == (data / "app.db").read_bytes()
    assert (restored / "notes.txt").read_text() == "notes, changed"
    assert not (tmp_path / "var/restore-set/.backupd-delta").exists()
    deltas = ("logs/app.log", "app.db")         # their mtime is the time of the third step
    expected = {path: state for path, state in snapshot(data).items() if path not in deltas}
    assert {path: state for path, state in snapshot(restored).items() if path not in deltas} == expected


def test_a_rotated_file_is_stored_whole_and_a_rewritten_one_is_all_extents(tmp_path):
    config = configure(tmp_path, delta_files=["logs/*"])
    data = tmp_path / "data"
    (data / "logs/rotated.log").write_bytes(log_lines(50_000, 0))
    (data / "logs/rewritten.log").write_bytes(log_lines(50_000, 0))
    full = run(config)
    (data / "logs/rotated.log").write_bytes(log_lines(1_000, 1))       # shorter: the full's copy is no base
    (data / "logs/rewritten.log").write_bytes(log_lines(60_000, 1))    # every block differs
    diff = run(config)
    archive = tmp_path / "var/archives" / diff.archive.name
    assert "files/logs/rotated.log" in members(archive) and "files/logs/rewritten.log" not in members(archive)
    entry = next(e for e in diff_manifest(archive)["members"] if e["name"] == "files/logs/rewritten.log")
    assert sum(extent["size"] for extent in entry["delta"]["extents"]) == len(log_lines(60_000, 1))
    archives = tmp_path / "var/archives"
    with open(archives / full.archive.name, "rb") as base, open(archive, "rb") as differential:
        restore_set(base, differential, tmp_path / "out", name=diff.archive.name)
    assert snapshot(tmp_path / "out/files") == snapshot(data)


def test_a_file_written_to_while_it_is_read_restores_as_read(tmp_path, monkeypatch):
    """A block changed after it was compared and before the next one is read: the file's sha256 is that of
    what a restore makes (the full's blocks found equal, the extents written), so the set restores."""
    config = configure(tmp_path, delta_files=["*.db"])
    data = tmp_path / "data"
    (data / "app.db").write_bytes(os.urandom(4 * MiB))
    full = run(config)
    with open(data / "app.db", "r+b") as db:
        db.seek(3 * MiB)
        db.write(b"changed before the run")
    feed = Extents.feed

    def writing_meanwhile(self, offset, block):
        feed(self, offset, block)
        if offset == 0:                  # block 0 was found equal; now the application writes into it
            with open(data / "app.db", "r+b") as db:
                db.write(b"written during the run")
    monkeypatch.setattr(Extents, "feed", writing_meanwhile)
    diff = run(config)
    archives = tmp_path / "var/archives"
    with open(archives / full.archive.name, "rb") as base, open(archives / diff.archive.name, "rb") as differential:
        restore_set(base, differential, tmp_path / "out", name=diff.archive.name)
    restored = (tmp_path / "out/files/app.db").read_bytes()
    assert restored[3 * MiB:3 * MiB + 22] == b"changed before the run" and restored[:22] != b"written during the run"


def test_files_that_match_no_glob_are_stored_whole(tmp_path):
    config = configure(tmp_path, delta_files=["*.log"])
    data = tmp_path / "data"
    (data / "logs/app.txt").write_bytes(log_lines(50_000, 0))
    run(config)
    with open(data / "logs/app.txt", "ab") as grown:
        grown.write(b"more\n")
    archive = tmp_path / "var/archives" / run(config).archive.name
    assert "files/logs/app.txt" in members(archive)
    assert os.path.getsize(archive) > 100_000
