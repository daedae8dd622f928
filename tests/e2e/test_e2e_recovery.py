"""What the daemon settles at start after a kill (issue 9, defects 3 and 4): a run killed just after its
archive was stored is recorded as stored, with an end time; what a store killed mid-copy left in a local
destination is removed, and nothing else there."""
from __future__ import annotations

import os
import signal

from backupd.config import load
from backupd.destinations.local import LocalDestination
from tests.configs import directory_source, write_config
from tests.destinations.helpers import make_archive
from tests.jobs.interrupt import killed_after_storing


def store_killed_mid_copy(destination: LocalDestination, archive) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            destination.store(*archive, progress=lambda done, total: os.kill(os.getpid(), signal.SIGKILL))
        finally:
            os._exit(1)
    os.waitpid(pid, 0)


def test_the_daemon_reconciles_a_run_killed_after_storing_and_cleans_the_destination(tmp_path, start_daemon):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("content")
    path = write_config(tmp_path, sources={"files": directory_source(data)})
    config = load(path)
    run_id = killed_after_storing(config)
    archives = tmp_path / "archives"
    store_killed_mid_copy(LocalDestination(config.destinations["local"]),
                          make_archive(tmp_path, 1000, name="main-older.tar.zst", job="main"))
    (archives / "notes.txt").write_text("a user's file")
    debris = {".partial-main-older.tar.zst", "main-older.tar.zst.meta.json"}
    assert debris <= set(os.listdir(archives))

    daemon = start_daemon(path)
    record = daemon.ctl_json("history")["runs"][0]
    assert record["run_id"] == run_id and record["status"] == "success", record
    assert record["archive"] and record["ended"] and "found stored on local" in record["note"]
    assert not debris & set(os.listdir(archives))
    assert (archives / "notes.txt").read_text() == "a user's file"
    listed = daemon.ctl_json("list")["backups"]
    assert [b["name"] for b in listed] == [record["archive"]["name"]]
