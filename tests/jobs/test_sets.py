"""Backup sets in-process: which runs are fulls, what a differential holds, and the tree tar -G gives back."""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from datetime import timedelta

import pytest

from backupd.archive.sink import SourceSink
from backupd.cancel import CancelToken
from backupd.config import load
from backupd.destinations.base import ArchiveMeta
from backupd.jobs.actions.store import BASE_ABSENT, StoreContext, store_everywhere
from backupd.jobs.result import RunRecord
from backupd.jobs import sets
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from backupd.restore import restore_set
from tests.age_keys import needs_age, x25519
from tests.configs import directory_source, job, local_destination, write_config
from tests.diff_trees import members, snapshot, tar_restore

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


def build_tree(data):
    (data / "docs/deep").mkdir(parents=True)
    (data / "docs/a.txt").write_text("alpha")
    (data / "docs/deep/b.txt").write_text("beta" * 1000)
    (data / "old").mkdir()
    (data / "old/x").write_text("x")
    (data / "later_dir").write_text("a file that becomes a folder")
    (data / "later_file").mkdir()
    (data / "later_file/inner").write_text("inner")
    (data / "keep.bin").write_bytes(os.urandom(300_000))
    os.symlink("docs/a.txt", data / "link")


def change_tree(data):
    (data / "docs/a.txt").write_text("alpha, changed")
    (data / "new.txt").write_text("new")
    shutil.rmtree(data / "old")
    (data / "later_dir").unlink()
    (data / "later_dir").mkdir()
    (data / "later_dir/in").write_text("in")
    shutil.rmtree(data / "later_file")
    (data / "later_file").write_text("now a file")
    os.rename(data / "docs/deep", data / "docs/renamed")
    os.chmod(data / "keep.bin", 0o600)
    os.unlink(data / "link")
    os.symlink("new.txt", data / "link")


def configure(tmp_path, **keys):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    path = write_config(tmp_path, sources={"files": directory_source(data)},
                        destinations={"local": local_destination(tmp_path / "archives")},
                        jobs={"main": job(["files"], differential=True, **keys)})
    return load(path)


def run(config, **fields):
    return Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir), **fields).execute()


def assert_tar_restores(tmp_path, full, differential) -> None:
    """tar -G of the full then the differential gives the data tree as it is now."""
    target = tmp_path / "restored"
    tar_restore([tmp_path / "archives" / full.archive.name, tmp_path / "archives" / differential.archive.name],
                target)
    assert snapshot(target / "files") == snapshot(tmp_path / "data")


def test_first_run_is_a_full_then_differentials_against_it(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    first = run(config)
    change_tree(tmp_path / "data")
    second = run(config)
    assert first.status == second.status == "success"
    assert (first.archive.kind, second.archive.kind) == ("full", "differential")
    assert second.archive.base == first.archive.name and second.archive.base_run_id == first.run_id
    assert f"-diff-{first.run_id[:8]}" in second.archive.name
    assert second.archive.set_size == first.archive.size + second.archive.size
    names = members(tmp_path / "archives" / second.archive.name)
    assert "files/keep.bin" in names                  # a permission change stores the file again
    assert "files/docs/renamed/b.txt" in names and "files/docs/a.txt" in names
    assert "files/docs/deep/b.txt" not in names
    assert_tar_restores(tmp_path, first, second)


def test_unchanged_files_are_left_out_and_a_tree_copied_with_new_inodes_is_not_stored_again(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    first = run(config)
    shutil.copytree(tmp_path / "data", tmp_path / "copy", symlinks=True)     # copy2: same mtimes, new ctimes
    shutil.rmtree(tmp_path / "data")
    os.rename(tmp_path / "copy", tmp_path / "data")
    second = run(config)
    assert second.archive.kind == "differential"
    stored = [name for name in members(tmp_path / "archives" / second.archive.name) if not name.endswith("/")]
    assert stored == ["files/link", "MANIFEST.json"]      # symbolic links are always stored
    assert second.archive.size < first.archive.size / 10


def test_trigger_full_age_and_size_limits_start_a_new_set(tmp_path):
    config = configure(tmp_path, full_every={"size": 1})        # any differential reaches 1 byte
    build_tree(tmp_path / "data")
    assert run(config).archive.kind == "full"
    assert run(config).archive.kind == "differential"
    assert run(config).archive.kind == "full"           # the set's differential reached full_every.size
    assert run(config, full=True).archive.kind == "full"
    history = History(config.daemon.state_dir)
    later = history.last_success("main").started + timedelta(days=7)
    plan = sets.plan(config.jobs["main"], history, config.daemon.state_dir, config.destinations, later)
    assert plan.kind == "full" and "old" in plan.reason


def test_a_failed_full_never_becomes_a_base(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    (tmp_path / "archives").write_text("not a folder: the local destination fails")
    failed = run(config)
    assert failed.status == "failed" and failed.archive.kind == "full"
    (tmp_path / "archives").unlink()
    assert run(config).archive.kind == "full"


def test_a_full_missing_at_a_destination_means_a_new_full(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    first = run(config)
    (tmp_path / "archives" / first.archive.name).unlink()
    history = History(config.daemon.state_dir)
    plan = sets.plan(config.jobs["main"], history, config.daemon.state_dir, config.destinations,
                     first.started + timedelta(hours=1))
    assert plan.kind == "full" and "missing at destination 'local'" in plan.reason
    assert run(config).archive.kind == "full"


def test_a_lost_manifest_copy_is_read_back_from_the_destination(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    first = run(config)
    copy = sets.manifest_copy(config.daemon.state_dir, "main", first.archive.name)
    assert copy.exists()
    copy.unlink()
    second = run(config)
    assert second.archive.kind == "differential" and copy.exists()


def test_a_new_full_replaces_the_previous_manifest_copy(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    first = run(config)
    second = run(config, full=True)
    folder = sets.bases_dir(config.daemon.state_dir, "main")
    assert [path.name for path in folder.iterdir()] == [f"{second.archive.name}.manifest.zst"]
    assert first.archive.name != second.archive.name


def test_a_job_without_differential_makes_fulls_and_keeps_no_copy(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    build_tree(data)
    config = load(write_config(tmp_path, sources={"files": directory_source(data)}))
    one, two = (Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir)).execute()
                for _ in range(2))
    assert one.archive.kind == two.archive.kind == "full"
    assert not sets.bases_dir(config.daemon.state_dir, "main").exists()


def test_a_table_dropped_from_a_database_is_gone_after_restoring_the_differential(tmp_path):
    """Sources without a folder of their own are stored whole in a differential, with a dumpdir of their folder."""
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as db:
        db.executescript("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');"
                         "CREATE TABLE old (x INTEGER); INSERT INTO old VALUES (1);")
    path = write_config(tmp_path, sources={"db": {"type": "sqlite", "path": database, "format": "csv"},
                                           "out": {"type": "command", "command": ["echo", "hello"],
                                                   "output": "hello.txt"},
                                           "files": directory_source(tmp_path / "data")},
                        destinations={"local": local_destination(tmp_path / "archives")},
                        jobs={"main": job(["db", "out", "files"], differential=True)})
    (tmp_path / "data").mkdir()
    (tmp_path / "data/a.txt").write_text("a")
    config = load(path)
    first = run(config)
    with sqlite3.connect(database) as db:
        db.executescript("DROP TABLE old; INSERT INTO users VALUES ('grace');")
    second = run(config)
    assert second.archive.kind == "differential"
    target = tmp_path / "restored"
    tar_restore([tmp_path / "archives" / first.archive.name, tmp_path / "archives" / second.archive.name], target)
    assert sorted(os.listdir(target / "db")) == ["users.csv"]
    assert (target / "db/users.csv").read_text().split() == ["name", "ada", "grace"]
    assert (target / "out/hello.txt").read_text() == "hello\n"


def test_a_differential_is_not_stored_where_its_full_is_absent(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    history = History(config.daemon.state_dir)
    archive = tmp_path / "diff.tar.zst"
    archive.write_bytes(b"bytes")
    meta = ArchiveMeta(name="main-h-20261201T000000Z-aaaaaaaa-diff-bbbbbbbb.tar.zst", job="main", run_id="aaaaaaaa0000",
                       host="h", size=5, sha256=hashlib.sha256(b"bytes").hexdigest(), created="2026-12-01T00:00:00Z",
                       base="main-h-20261130T000000Z-bbbbbbbb.tar.zst")
    record = RunRecord(run_id="aaaaaaaa0000", job="main", trigger="manual")
    context = StoreContext(destinations=config.destinations, state_dir=config.daemon.state_dir, history=history,
                           cancel=CancelToken(), progress=lambda *args: None, log_extra={})
    assert store_everywhere(context, ["local"], archive, meta, record) is False    # nothing kept for later
    result = record.destinations[0]
    assert (result.status, result.kind) == ("failed", BASE_ABSENT)
    assert "main-h-20261130T000000Z-bbbbbbbb.tar.zst is not there" in result.error
    assert history.pending("main") == [] and not (tmp_path / "archives" / meta.name).exists()
    assert record.status == "failed" and record.error.category == "destination"


@needs_age
def test_an_encrypted_set_restores_with_age_zstd_and_tar_g(tmp_path):
    key = x25519(tmp_path)
    config = configure(tmp_path, encrypt_to=[key.recipient])
    build_tree(tmp_path / "data")
    first = run(config)
    change_tree(tmp_path / "data")
    second = run(config)
    assert second.archive.kind == "differential" and second.archive.name.endswith("-diff-"
                                                                                  f"{first.run_id[:8]}.tar.zst.age")
    target = tmp_path / "restored"
    target.mkdir()
    for name in (first.archive.name, second.archive.name):
        subprocess.run(f"age -d -i '{key.identity}' '{tmp_path / 'archives' / name}' | zstd -qdc | "
                       f"tar -G -x -C '{target}'", shell=True, check=True)
    assert snapshot(target / "files") == snapshot(tmp_path / "data")


def test_a_reinstalled_machine_carries_on_the_set_from_the_destination(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    first = run(config)
    change_tree(tmp_path / "data")
    shutil.rmtree(tmp_path / "state")            # the history and the manifest copy are gone
    second = run(config)
    assert (second.archive.kind, second.archive.base) == ("differential", first.archive.name)
    assert_tar_restores(tmp_path, first, second)


def test_a_change_of_the_jobs_sources_starts_a_new_set(tmp_path):
    config = configure(tmp_path)
    build_tree(tmp_path / "data")
    run(config)
    (tmp_path / "more").mkdir()
    (tmp_path / "more/m.txt").write_text("m")
    changed = load(write_config(tmp_path, sources={"files": directory_source(tmp_path / "data"),
                                                   "more": directory_source(tmp_path / "more")},
                                destinations={"local": local_destination(tmp_path / "archives")},
                                jobs={"main": job(["files", "more"], differential=True)}))
    assert run(changed).archive.kind == "full"
    assert run(changed).archive.kind == "differential"
    assert run(config).archive.kind == "full"          # and back: "more" must not come back from the full


def test_a_file_gone_after_its_folder_was_listed_is_not_restored_from_the_full(tmp_path, monkeypatch):
    """The race every busy tree has: a file listed in its folder's dumpdir, gone when it is read. backupd's
    restore gives the differential's complete state (without it), with a warning."""
    config = configure(tmp_path)
    data = tmp_path / "data"
    build_tree(data)
    first = run(config)
    (data / "docs/a.txt").write_text("alpha, changed, then gone")
    add_files = SourceSink.add_files

    def vanishing(self, entries, *, dir_fd=None):
        for member, entry, _ in entries:
            if member == "docs/a.txt":
                os.unlink(entry, dir_fd=dir_fd)
        return add_files(self, entries, dir_fd=dir_fd)
    monkeypatch.setattr(SourceSink, "add_files", vanishing)
    second = run(config)
    assert second.status == "success" and second.warnings == 1 and second.archive.kind == "differential"
    archives = tmp_path / "archives"
    with open(archives / first.archive.name, "rb") as full, open(archives / second.archive.name, "rb") as diff:
        summary = restore_set(full, diff, tmp_path / "out", name=second.archive.name)
    assert snapshot(tmp_path / "out/files") == snapshot(data)
    assert any(w.startswith("files/docs/a.txt: in the full, not in") for w in summary.warnings)
