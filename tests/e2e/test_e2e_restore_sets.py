"""Restore and verify of a differential with the real daemon and backupctl: through the daemon (the local
destination and the loopback Drive), with it stopped (--config), and from the files (--archive --base);
a full missing at every destination, and a corrupted differential, restore nothing."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.archive.helpers import tree_state
from tests.configs import directory_source, job, local_destination, write_config
from tests.destinations.conftest import drive, rsa_key  # noqa: F401  (the loopback Drive and a key for it)

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


def make_set(tmp_path: Path, drive, rsa_key, start_daemon):
    """A running daemon with one full and one differential of `data` at disk and drive."""
    data = tmp_path / "data"
    (data / "docs/deep").mkdir(parents=True)
    (data / "docs/deep/kept.bin").write_bytes(os.urandom(200_000))
    (data / "docs/gone.txt").write_text("gone")
    (data / "app.log").write_bytes(b"a line of the log\n" * 20_000)
    os.symlink("docs", data / "link")
    credentials = drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account(key=rsa_key))
    gdrive = {"type": "gdrive", "credentials": str(credentials), "folder": "backupd/sets", "endpoint": drive.url,
              "chunk_size": "256KiB", "retry_deadline": "5s", "timeout": "3s"}
    config = write_config(tmp_path, sources={"files": directory_source(data)},
                          destinations={"disk": local_destination(tmp_path / "disk"), "drive": gdrive},
                          jobs={"main": job(["files"], ["disk", "drive"], differential=True, delta_files=["*.log"])})
    daemon = start_daemon(config)
    full = daemon.ctl_json("trigger", "--wait")
    (data / "docs/gone.txt").unlink()
    (data / "docs/new.txt").write_text("new")
    os.rename(data / "docs/deep", data / "docs/renamed")
    with open(data / "app.log", "ab") as log:
        log.write(b"one more line\n" * 500)
    differential = daemon.ctl_json("trigger", "--wait")
    assert (full["archive"]["kind"], differential["archive"]["kind"]) == ("full", "differential")
    return daemon, config, data, full["archive"], differential["archive"]


def restore(daemon, out: Path, *args: str):
    return daemon.ctl("restore", *args, "--to", str(out))


def test_a_differential_restores_through_the_daemon_with_config_and_from_the_files(tmp_path, start_daemon, drive,
                                                                                  rsa_key):
    daemon, config, data, full, differential = make_set(tmp_path, drive, rsa_key, start_daemon)
    for destination in ("disk", "drive"):
        done = restore(daemon, tmp_path / f"out-{destination}", "latest", "--destination", destination)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"restored {differential['name']} over its full {full['name']} from "
                                      f"{destination} into ")
        assert tree_state(tmp_path / f"out-{destination}" / "files") == tree_state(data)
    fetched = [line["archive"] for line in daemon.log_lines() if line.get("audit") == "fetch"]
    assert fetched == [differential["name"], full["name"]] * 2
    verified = daemon.ctl("verify", "latest", "--destination", "drive")
    assert verified.returncode == 0 and verified.stdout.startswith(
        f"ok: {differential['name']} at drive (a differential of {full['name']}): ")
    assert daemon.stop() == 0

    done = restore(daemon, tmp_path / "stopped", differential["name"], "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert tree_state(tmp_path / "stopped" / "files") == tree_state(data)
    disk = tmp_path / "disk"
    alone = restore(daemon, tmp_path / "alone", "--archive", str(disk / differential["name"]))
    assert alone.returncode == 1 and alone.stdout == ""
    assert alone.stderr == (f"backupctl: {differential['name']} is a differential backup: restoring it needs its "
                            f"full, {full['name']}; pass that file with --base FULL_FILE; nothing restored\n")
    assert not (tmp_path / "alone").exists()
    done = restore(daemon, tmp_path / "out-files", "--archive", str(disk / differential["name"]),
                   "--base", str(disk / full["name"]))
    assert done.returncode == 0, done.stderr
    assert tree_state(tmp_path / "out-files" / "files") == tree_state(data)


def test_a_missing_full_and_a_corrupted_differential_restore_nothing(tmp_path, start_daemon, drive, rsa_key):
    daemon, config, _, full, differential = make_set(tmp_path, drive, rsa_key, start_daemon)
    (tmp_path / "disk" / full["name"]).unlink()
    elsewhere = restore(daemon, tmp_path / "elsewhere", "latest", "--destination", "disk")
    assert elsewhere.returncode == 0, elsewhere.stderr           # the differential from disk, its full from drive
    fetched = [(line["archive"], line["destination"]) for line in daemon.log_lines() if line.get("audit") == "fetch"]
    assert fetched == [(differential["name"], "disk"), (full["name"], "drive")]
    with drive.state.lock:
        for stored in drive.state.files.values():
            stored.trashed = stored.trashed or stored.name == full["name"]
    missing = restore(daemon, tmp_path / "missing", "latest", "--destination", "disk")
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1, missing.stderr
    assert missing.stderr.startswith(f"backupctl: cannot restore {differential['name']}: its full {full['name']} "
                                     "cannot be fetched: ") and missing.stderr.endswith("; nothing restored\n")
    assert not (tmp_path / "missing").exists()

    path = tmp_path / "disk" / differential["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    (tmp_path / "target").mkdir()
    before = len([line for line in daemon.log_lines() if line.get("audit") == "fetch"])
    corrupted = restore(daemon, tmp_path / "target", "latest", "--destination", "disk")
    assert corrupted.returncode == 1 and corrupted.stderr.startswith("backupctl: archive does not verify: ")
    fetched = [line["archive"] for line in daemon.log_lines() if line.get("audit") == "fetch"][before:]
    assert fetched == [differential["name"]]            # refused before its full was asked for
    assert "nothing restored" in corrupted.stderr and os.listdir(tmp_path / "target") == []
    verified = daemon.ctl("verify", "latest", "--destination", "disk")
    assert verified.returncode == 1 and verified.stdout.startswith(f"FAILED: {differential['name']} at disk")
