"""Restore and verify with the real daemon, backupctl, zstd, tar and sqlite3: every source kind through the
local destination and the loopback Drive, with the daemon running and stopped (--config) and from the file
alone; a flipped byte is reported and nothing restored; a cut Drive download resumes; a control_group
member is refused a restore through the socket while root is not."""
from __future__ import annotations

import grp
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest

from tests.destinations.conftest import drive, rsa_key  # noqa: F401  (the loopback Drive and a key for it)
from tests.e2e.restore_world import check, loosen, make_world

NOBODY = 65534


def backed_up(world, start_daemon, **kwargs):
    daemon = start_daemon(world.config, **kwargs)
    record = daemon.ctl_json("trigger", "--wait")
    assert record["status"] == "success", record
    return daemon, record


def restored(daemon, out: Path, *args: str) -> str:
    done = daemon.ctl("restore", *args, "--to", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_source_round_trips_with_the_daemon_running_stopped_and_from_the_file(tmp_path, start_daemon, drive,
                                                                                   rsa_key):
    world = make_world(tmp_path, drive, rsa_key)
    daemon, record = backed_up(world, start_daemon)
    outs = []
    for destination in ("disk", "drive"):
        outs.append(tmp_path / f"running-{destination}")
        shown = restored(daemon, outs[-1], "latest", "--destination", destination)
        assert f"from {destination} into {outs[-1]}" in shown and " in " in shown
        check(world, outs[-1])
    outs.append(tmp_path / "by-run-id")
    summary = daemon.ctl_json("restore", record["run_id"][:8], "--to", str(outs[-1]))
    assert summary["backup"]["destination"] == "disk"                       # local before remote
    assert summary["archive_sha256"] == record["archive"]["sha256"] and not summary["refused"]
    check(world, outs[-1])
    fetches = [line for line in daemon.log_lines() if line.get("audit") == "fetch"]
    assert len(fetches) == 3 and {line["peer_uid"] for line in fetches} == {os.getuid()}
    assert daemon.stop() == 0

    for destination in ("disk", "drive"):
        outs.append(tmp_path / f"stopped-{destination}")
        restored(daemon, outs[-1], "latest", "--config", str(world.config), "--destination", destination)
        check(world, outs[-1])
    outs.append(tmp_path / "from-the-file")
    restored(daemon, outs[-1], "--archive", str(world.archives()[0]))
    check(world, outs[-1])
    loosen(world.data, *outs)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(data)


def test_a_flipped_byte_is_reported_and_restore_refuses_before_anything_is_restored(tmp_path, start_daemon, drive,
                                                                                   rsa_key):
    world = make_world(tmp_path, drive, rsa_key)
    daemon, record = backed_up(world, start_daemon)
    flip_a_byte(world.archives()[0])
    verify = daemon.ctl("verify", "latest", "--destination", "disk")
    assert verify.returncode == 1
    lines = verify.stdout.splitlines()
    assert lines[0] == f"FAILED: {record['archive']['name']} at disk"
    assert re.fullmatch(f"  archive sha256 is [0-9a-f]{{64}}, the record says {record['archive']['sha256']}", lines[1])
    assert len(lines) > 2            # and what else differs: a member, or the zstd data around it
    target = tmp_path / "target"
    refused = daemon.ctl("restore", "latest", "--destination", "disk", "--to", str(target))
    assert refused.returncode == 1 and refused.stderr.startswith("backupctl: ")
    assert "nothing restored" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert not target.exists()
    assert daemon.ctl("verify", "latest", "--destination", "drive").stdout.startswith("ok: ")
    restored(daemon, tmp_path / "from-drive", "latest", "--destination", "drive")
    assert daemon.stop() == 0
    refused = daemon.ctl("restore", "latest", "--config", str(world.config), "--destination", "disk",
                         "--to", str(target))
    assert refused.returncode == 1 and "nothing restored" in refused.stderr and not target.exists()
    db = sqlite3.connect(world.base / "state" / "history.db")
    statuses = db.execute("SELECT destination, status FROM verifications ORDER BY started").fetchall()
    failed = db.execute("SELECT archive, destination FROM failed_checks").fetchall()
    db.close()
    assert statuses == [("disk", "failed"), ("drive", "success")]
    assert failed == [(record["archive"]["name"], "disk")]
    loosen(world.data, tmp_path / "from-drive")


def test_a_cut_drive_download_resumes_with_and_without_the_daemon(tmp_path, start_daemon, drive, rsa_key):
    world = make_world(tmp_path, drive, rsa_key)
    daemon, _ = backed_up(world, start_daemon)
    drive.inject("cut", on="media", nth=3, times=2)
    restored(daemon, tmp_path / "running", "latest", "--destination", "drive")
    check(world, tmp_path / "running")
    assert drive.faults.fired == 2
    assert daemon.stop() == 0
    drive.inject("cut", on="media", nth=2)
    restored(daemon, tmp_path / "stopped", "latest", "--config", str(world.config), "--destination", "drive")
    check(world, tmp_path / "stopped")
    assert drive.faults.fired == 3
    loosen(world.data, tmp_path / "running", tmp_path / "stopped")


def ctl_as_member(socket: Path, *args: str) -> tuple[int, str]:
    """backupctl run by a forked child as nobody, a member of the control group `users`: (exit, stderr)."""
    from backupd.cli import ctl, restore  # noqa: F401  (imported before the child drops its rights)
    users = grp.getgrnam("users").gr_gid
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            sys.stderr = open(2, "w", closefd=False)
            os.setgroups([users])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = ctl.main(["--socket", str(socket), *args])
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        stderr = pipe.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), stderr


def test_a_control_group_member_is_refused_a_restore_through_the_socket_and_root_is_not(tmp_path, start_daemon,
                                                                                        drive, rsa_key):
    if os.geteuid() != 0:
        pytest.skip("needs root to run backupctl as another uid")
    reachable = Path(tempfile.mkdtemp(prefix="rst-"))
    os.chmod(reachable, 0o755)
    try:
        world = make_world(tmp_path, drive, rsa_key, socket=reachable / "ctl.sock", control_group="users")
        daemon, _ = backed_up(world, start_daemon, socket=world.socket)
        target = reachable / "member-restore"
        code, stderr = ctl_as_member(world.socket, "restore", "latest", "--to", str(target))
        assert (code, stderr) == (1, "backupctl: restoring needs root (or the backupd user)\n")
        assert not target.exists()
        assert ctl_as_member(world.socket, "status")[0] == 0              # a member may still query
        refusals = [line for line in daemon.log_lines() if line.get("audit") == "refused"]
        assert [(line["peer_uid"], line["command"]) for line in refusals] == [(NOBODY, "fetch")]
        restored(daemon, tmp_path / "as-root", "latest")
        check(world, tmp_path / "as-root")
        loosen(world.data, tmp_path / "as-root")
    finally:
        shutil.rmtree(reachable, ignore_errors=True)
