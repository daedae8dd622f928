"""backupd under a real systemd: socket activation, STATUS=, reload, journal audit trail, watchdog, clean stop."""
from __future__ import annotations

import os
import re
import time

import pytest

from backupd_install import ARCHIVES, DATA, SPOOL, Backupd, config_text, missing_installation

# A sparse file: no memory in the overlay, yet reading, hashing and compressing 64 GiB of zeros takes minutes, in
# 4 MiB chunks the writer can cancel between. (Random data at a high zstd level is no substitute: the multithreaded
# compressor buffers ~100 MB, so the reads end at once and the run is uncancellable while the buffer compresses.)
SPARSE_SIZE = 64 << 30


@pytest.fixture
def backupd(private_systemd):
    """backupd installed from packaging/, its socket started, the service not yet running."""
    reason = missing_installation()
    if reason:
        pytest.fail(reason) if os.environ.get("CI") == "true" else pytest.skip(reason)
    daemon = Backupd(private_systemd)
    daemon.install(config_text())
    daemon.add_data("hello.txt", b"hello from the test\n")
    private_systemd.systemctl("start", "backupd.socket")
    return daemon


def test_trigger_through_the_socket_activates_the_service(backupd, private_systemd):
    assert private_systemd.show("backupd", "ActiveState") == "inactive"
    result = backupd.ctl_json("trigger", "--wait", "daily")
    assert result["status"] == "success"
    assert private_systemd.show("backupd", "ActiveState") == "active"
    archive = result["archive"]["name"]
    assert archive in backupd.files(ARCHIVES)
    stat = (private_systemd.root / ARCHIVES.lstrip("/") / archive).stat()
    assert (stat.st_size, stat.st_mode & 0o777) == (result["archive"]["size"], 0o600)
    assert private_systemd.run("stat", "-c", "%U", f"{ARCHIVES}/{archive}").stdout.strip() == "backupd"


def test_status_text_shows_idle_with_the_next_run(backupd, private_systemd):
    private_systemd.systemctl("start", "backupd")  # Type=notify: returns after READY=1
    status = private_systemd.show("backupd", "StatusText")
    assert re.fullmatch(r"idle; next run daily at \d{4}-\d\d-\d\dT03:00:00Z", status), status


def test_reload_with_a_broken_config_keeps_the_old_schedule(backupd, private_systemd):
    private_systemd.systemctl("start", "backupd")
    pid = backupd.main_pid()
    backupd.write_config(config_text(schedule="61 3 * * *"))
    private_systemd.systemctl("reload", "backupd")
    status = private_systemd.wait_for(
        lambda: "reload failed" in (text := private_systemd.show("backupd", "StatusText")) and text,
        "STATUS= to report the failed reload")
    assert status.startswith("idle; next run daily at ") and "T03:00:00Z" in status
    assert (private_systemd.show("backupd", "ActiveState"), backupd.main_pid()) == ("active", pid)
    assert [job["schedule"] for job in backupd.ctl_json("status")["jobs"]] == ["0 3 * * *"]
    assert any(line["message"] == "reload failed" for line in backupd.audit())

    backupd.write_config(config_text(schedule="30 4 * * *"))
    private_systemd.systemctl("reload", "backupd")
    private_systemd.wait_for(lambda: "T04:30:00Z" in private_systemd.show("backupd", "StatusText"),
                             "the fixed configuration to be scheduled")
    assert backupd.main_pid() == pid


def test_journal_holds_the_runs_json_audit_lines(backupd, private_systemd):
    run_id = backupd.ctl_json("trigger", "--wait", "daily")["run_id"]
    audit = backupd.audit()
    assert audit, "no JSON lines in journalctl -u backupd -o cat"
    assert all(line["service"] == "backupd" for line in audit)
    of_run = {line["message"]: line for line in audit if line.get("run_id") == run_id}
    assert of_run["run started"]["trigger"] == "manual"
    assert of_run["run finished"]["status"] == "success"
    assert any(line.get("command") == "trigger" and line.get("peer_uid") == 0 for line in audit)


def test_a_frozen_daemon_is_restarted_by_the_watchdog(backupd, private_systemd):
    private_systemd.install("/etc/systemd/system/backupd.service.d/test-watchdog.conf",
                            "[Service]\nWatchdogSec=2s\nRestartSec=100ms\n")
    private_systemd.daemon_reload()
    private_systemd.systemctl("start", "backupd")
    pid = backupd.main_pid()
    assert private_systemd.show("backupd", "WatchdogUSec") == "2s"
    private_systemd.run("kill", "-STOP", str(pid))
    private_systemd.wait_for(
        lambda: private_systemd.show("backupd", "NRestarts") == "1"
        and private_systemd.show("backupd", "ActiveState") == "active",
        "the watchdog to restart backupd", timeout=20)
    assert backupd.main_pid() != pid
    manager_log = private_systemd.run("journalctl", "-u", "backupd", "--no-pager").stdout
    assert "backupd.service: Watchdog timeout" in manager_log
    assert backupd.ctl_json("status")["pid"] == backupd.main_pid()


def test_stop_during_a_backup_leaves_no_partial_archive(backupd, private_systemd):
    backupd.write_config(config_text(level=1))
    sparse = private_systemd.root / DATA.lstrip("/") / "sparse.bin"
    sparse.touch()
    os.truncate(sparse, SPARSE_SIZE)
    run_id = backupd.ctl_json("trigger", "daily")["run_id"]
    private_systemd.wait_for(lambda: _running(backupd), "the run to be archiving")
    assert backupd.files(SPOOL), "the run in progress writes into the spool"

    started = time.monotonic()
    private_systemd.systemctl("stop", "backupd", timeout=90)
    assert time.monotonic() - started < 10, "cancelling the run took longer than 10 s"
    assert private_systemd.show("backupd", "Result") == "success"  # exited by itself, not killed at the timeout
    assert (backupd.files(ARCHIVES), backupd.files(SPOOL)) == ([], [])
    ended = [line for line in backupd.audit() if line.get("run_id") == run_id and line["message"] == "run finished"]
    assert [line["status"] for line in ended] == ["interrupted"]


def _running(backupd) -> bool:
    """The run is archiving and has read some data (it is inside the sparse file)."""
    runs = [job.get("running") or {} for job in backupd.ctl_json("status")["jobs"]]
    return any(run.get("stage") == "archiving" and run.get("bytes_done") for run in runs)


def test_socket_admits_the_backupd_group_only(backupd, private_systemd):
    private_systemd.run("useradd", "--groups", "backupd", "operator1")
    private_systemd.run("useradd", "outsider")
    as_member = ("setpriv", "--reuid=operator1", "--regid=operator1", "--init-groups")
    as_outsider = ("setpriv", "--reuid=outsider", "--regid=outsider", "--init-groups")
    member = private_systemd.run(*as_member, *backupd.ctl_argv("status"), check=False)
    assert member.returncode == 0, member.stderr
    assert "idle; next run daily" in member.stdout
    outsider = private_systemd.run(*as_outsider, *backupd.ctl_argv("status"), check=False)
    assert outsider.returncode == 3  # EXIT_UNREACHABLE: the socket is 0660 root:backupd
    assert "Permission denied" in outsider.stderr
