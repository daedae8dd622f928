"""Verifications tell the watchers: each one recorded (scheduled, or `backupctl verify` through the daemon)
rewrites the metrics file with its job's and destination's last verification, and a stored copy found damaged
fires on_failure and /fail with category verify."""
from __future__ import annotations

from pathlib import Path

from tests.e2e.watched import ENV_DUMP, config, dumped, metric, wait_metric
from tests.fakes.ping_server import PingServer
from tests.waiting import wait_for


def damage(tmp_path: Path, name: str) -> None:
    """One byte of the stored copy flipped in place (a silently corrupted disk): same size, same name."""
    stored = next((tmp_path / "archives").rglob(name))
    with open(stored, "r+b") as file:
        file.seek(stored.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 0x01]))


def verify_alert(tmp_path: Path, archive: str) -> dict:
    env = wait_for(lambda: (tmp_path / "fail").exists() and dumped(tmp_path / "fail"), what="the verify alert")
    assert (env["BACKUPD_STATUS"], env["BACKUPD_ERROR_CATEGORY"], env["BACKUPD_ARCHIVE"]) == (
        "failed", "verify", archive)
    assert env["BACKUPD_ERROR"].startswith(f"verification of {archive} at destination 'local' failed: ")
    return env


def test_backupctl_verify_refreshes_the_metrics_and_a_damaged_copy_alerts(tmp_path, start_daemon):
    with PingServer() as server:
        daemon = start_daemon(config(tmp_path, ping_url=server.url, on_failure=[*ENV_DUMP, str(tmp_path / "fail")]))
        archive = daemon.ctl_json("trigger", "--wait")["archive"]["name"]
        assert daemon.ctl("verify", "latest").returncode == 0
        wait_metric(tmp_path, 1, "backupd_last_verify_ok", job="main", destination="local")
        passed = metric(tmp_path, "backupd_last_verify_timestamp_seconds", job="main", destination="local")
        damage(tmp_path, archive)
        assert daemon.ctl("verify", "latest").returncode == 1
        env = verify_alert(tmp_path, archive)
        wait_metric(tmp_path, 0, "backupd_last_verify_ok", job="main", destination="local")
        assert metric(tmp_path, "backupd_last_verify_timestamp_seconds", job="main", destination="local") >= passed
        assert env["BACKUPD_TRIGGER"] == "manual"
        wait_for(lambda: len(server.pings) == 3, what="the /fail ping")
    assert server.paths() == [server.path + "/start", server.path, server.path + "/fail"]
    assert server.pings[2][2] == f"failed: {env['BACKUPD_ERROR']}"


def test_a_scheduled_verification_that_finds_a_damaged_copy_alerts(tmp_path, start_daemon):
    path = config(tmp_path, verify_schedule="30 4 * * 0", on_failure=[*ENV_DUMP, str(tmp_path / "fail")])
    daemon = start_daemon(path, launch=("--verify-every", "1"))      # its verify_schedule fires every second
    archive = daemon.ctl_json("trigger", "--wait")["archive"]["name"]
    wait_metric(tmp_path, 1, "backupd_last_verify_ok", job="main", destination="local")
    damage(tmp_path, archive)
    env = verify_alert(tmp_path, archive)
    assert env["BACKUPD_TRIGGER"] == "schedule"
    wait_metric(tmp_path, 0, "backupd_last_verify_ok", job="main", destination="local")
