"""A differential job on the loopback Drive: the full and its differential both uploaded, and a full deleted
there means a new full, as the listing says."""
from __future__ import annotations

import os
import shutil

import pytest

from backupd.config import load
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.configs import directory_source, job, local_destination, write_config
from tests.fakes.drive import DriveServer

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


def configure(tmp_path, drive):
    credentials = drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account())
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(600_000))
    (data / "small.txt").write_text("small")
    drive_destination = {"type": "gdrive", "credentials": str(credentials), "folder": "backupd/sets",
                         "endpoint": drive.url, "chunk_size": "256KiB", "retry_deadline": "3s", "timeout": "3s"}
    return load(write_config(tmp_path, sources={"files": directory_source(data)},
                             destinations={"local": local_destination(tmp_path / "archives"),
                                           "drive": drive_destination},
                             jobs={"main": job(["files"], ["local", "drive"], differential=True)}))


def run(config):
    return Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir)).execute()


def drive_names(drive) -> set[str]:
    return {f.name for f in drive.files.values() if f.name.endswith(".tar.zst")}


def test_the_full_and_its_differential_reach_the_drive_and_a_full_gone_there_starts_a_new_set(tmp_path):
    with DriveServer() as drive:
        config = configure(tmp_path, drive)
        first = run(config)
        (tmp_path / "data/small.txt").write_text("changed")
        second = run(config)
        assert first.status == second.status == "success", (first.error, second.error)
        assert second.archive.kind == "differential" and second.archive.size < first.archive.size / 10
        assert drive_names(drive) == {first.archive.name, second.archive.name}
        file_id = next(i for i, f in drive.files.items() if f.name == first.archive.name)
        with drive.state.lock:
            drive.state.files.pop(file_id)                  # deleted in the Drive's web UI
        third = run(config)
        assert third.status == "success" and third.archive.kind == "full"
        assert third.archive.name in drive_names(drive)
