"""The daemon's life: schedule, catch-up, stop during a run, crash recovery, reload, refusals."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backupd.daemon import protocol as proto
from tests.configs import command_source, job, write_config
from tests.waiting import wait_for

QUICK = ["sh", "-c", "echo quick"]
SLOW = ["sh", "-c", "echo started; exec sleep 600"]
STOPS, STOP_BOUND = 5, 10.0     # stops in a row; seconds each may take, half the configured stop_timeout


def config(tmp_path: Path, schedule="0 3 * * *", command=QUICK, daemon: dict | None = None, **job_keys) -> Path:
    """One job on one command source; `daemon` and `job_keys` add to the daemon's and the job's keys."""
    return write_config(tmp_path, daemon={"stop_timeout": "20s", **(daemon or {})},
                        jobs={"main": job(["cmd"], schedule=schedule, **job_keys)},
                        sources={"cmd": command_source(command, timeout="5m")})


def runs(daemon) -> list[dict]:
    return daemon.ctl_json("history")["runs"]


def test_scheduled_run_fires_and_is_recorded_as_schedule(tmp_path, start_daemon):
    # every minute by its crontab; launched to fire every 3 s instead, through the same scheduler
    daemon = start_daemon(config(tmp_path, schedule="* * * * *"), launch=("--fire-every", "3"))
    status = daemon.ctl_json("status")
    next_run = datetime.fromisoformat(status["jobs"][0]["next_run"].replace("Z", "+00:00"))
    assert 0 < (next_run - datetime.now(timezone.utc)).total_seconds() <= 61
    done = wait_for(lambda: [r for r in runs(daemon) if r["status"] == "success"], timeout=75,
                    interval=0.5, what="the scheduled run")
    assert done[0]["trigger"] == "schedule"


def _set_last_slot(state_dir, when: datetime) -> None:
    with sqlite3.connect(state_dir / "history.db") as db:
        db.execute("UPDATE job_state SET last_slot = ? WHERE job = 'main'",
                   (when.isoformat(timespec="seconds").replace("+00:00", "Z"),))


def test_catch_up_after_downtime_runs_exactly_once(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path, schedule="0 * * * *"))
    assert daemon.stop() == 0
    _set_last_slot(tmp_path / "state", datetime.now(timezone.utc) - timedelta(hours=5))  # five slots missed
    daemon.start()
    done = wait_for(lambda: [r for r in runs(daemon) if r["status"] != "running"], what="the catch-up run")
    assert [r["trigger"] for r in done] == ["catch-up"]
    assert daemon.stop() == 0
    daemon.start()                       # nothing missed since: no second catch-up
    assert [r["trigger"] for r in runs(daemon)] == ["catch-up"]


def test_missed_slot_older_than_grace_is_not_caught_up(tmp_path, start_daemon):
    two_hours_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).hour     # its newest slot: 2-3 h late
    daemon = start_daemon(config(tmp_path, schedule=f"0 {two_hours_ago} * * *", misfire_grace="1h"))
    daemon.stop()
    _set_last_slot(tmp_path / "state", datetime.now(timezone.utc) - timedelta(days=3))
    daemon.start()
    wait_for(lambda: any(line.get("message") == "missed run not caught up" for line in daemon.log_lines()),
             what="the skipped catch-up to be logged")
    assert runs(daemon) == []


def test_sigterm_during_a_run_leaves_nothing_partial(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path, command=SLOW))
    run_id = daemon.ctl_json("trigger")["run_id"]
    wait_for(lambda: daemon.ctl_json("status")["jobs"][0]["running"], what="the run to start")
    daemon.notify.wait("STATUS", "main: archiving 0 B", timeout=10)    # STATUS= follows the run
    assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    assert any("STOPPING" in fields for _, fields in daemon.notify.messages)
    assert not (tmp_path / "archives").exists() or not list((tmp_path / "archives").iterdir())
    assert not list((tmp_path / "state" / "spool").iterdir())
    assert not (tmp_path / "ctl.sock").exists()      # the socket it created is removed
    daemon.start()
    record = runs(daemon)[0]
    assert record["run_id"] == run_id and record["status"] == "interrupted", record


def test_sigterm_right_after_runs_is_answered_while_systemd_lags(tmp_path, start_daemon):
    """A NOTIFY_SOCKET with no room (systemd behind on reading) costs STATUS= messages, never the answer to
    SIGTERM: the main loop used to block in the send, and a stop then waited for ever."""
    daemon = start_daemon(config(tmp_path))      # stop_timeout 20s
    for attempt in range(STOPS):
        if attempt:
            daemon.start()
        assert daemon.notify.fill() > 0
        for _ in range(2):
            daemon.ctl("trigger", "--wait", check=True)
        assert daemon.stop(signal.SIGTERM, timeout=STOP_BOUND) == 0     # raises if it takes longer
    assert [r["status"] for r in runs(daemon.start())] == ["success"] * 2 * STOPS


def test_crash_during_a_run_is_marked_interrupted_at_next_start(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path, command=SLOW))
    run_id = daemon.ctl_json("trigger")["run_id"]
    wait_for(lambda: daemon.ctl_json("status")["jobs"][0]["running"], what="the run to start")
    daemon.stop(signal.SIGKILL)
    daemon.start()
    record = runs(daemon)[0]
    assert record["run_id"] == run_id and record["status"] == "interrupted"
    assert not [p for p in (tmp_path / "state" / "spool").iterdir()]


def test_reload_keeps_old_config_when_new_one_is_broken(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path, schedule="0 3 * * *"))
    before = daemon.ctl_json("status")["jobs"][0]
    config(tmp_path, schedule="0 99 * * *")
    broken = daemon.ctl("--json", "reload")
    assert broken.returncode == 1
    assert "hour must be 0-23, not 99" in broken.stdout + broken.stderr
    assert daemon.ctl_json("status")["jobs"][0]["schedule"] == before["schedule"]
    config(tmp_path, schedule="15 4 * * *")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.ctl_json("status")["jobs"][0]["schedule"] == "15 4 * * *", what="SIGHUP reload")
    assert daemon.ctl_json("status")["jobs"][0]["next_run"].endswith("04:15:00Z")


def test_notifications_in_order(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path))
    daemon.stop()
    messages = [fields for _, fields in daemon.notify.messages]
    keys = [next(k for k in ("READY", "STOPPING", "STATUS") if k in fields) for fields in messages]
    assert keys.index("READY") < keys.index("STOPPING")
    assert keys[0] == "STATUS"      # it says what it is doing before it is ready
    assert messages[0]["STATUS"].startswith("loading configuration")
    ready = next(fields for fields in messages if "READY" in fields)
    assert ready["STATUS"].startswith("idle; next run main at ") and ready["STATUS"].endswith("T03:00:00Z")


def _call_as_stranger(socket_path: Path) -> str:
    """Fork, drop to uid/gid 65534 with no groups, ask for status over the real socket; return the answer."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: never returns into pytest
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                answer = json.dumps(proto.call(str(socket_path), "status", timeout=10))
            except proto.RemoteError as exc:
                answer = f"refused: {exc}"
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as answer:
        return answer.read()


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root to connect as another uid")
def test_stranger_uid_is_refused(tmp_path, start_daemon):
    public = Path(tempfile.mkdtemp(prefix="backupd-e2e-"))
    try:
        public.chmod(0o755)
        daemon = start_daemon(config(tmp_path, daemon={"socket": public / "ctl.sock"}), socket=public / "ctl.sock")
        os.chmod(daemon.socket, 0o666)   # let the stranger reach the socket; SO_PEERCRED must still refuse it
        answer = _call_as_stranger(daemon.socket)
        assert answer.startswith("refused:") and "not permitted" in answer, answer
        assert daemon.ctl("status").returncode == 0          # root still is served
        refusals = [line for line in daemon.log_lines() if line.get("peer_uid") == 65534]
        assert refusals, "the refusal is in the audit log with the peer's uid"
    finally:
        shutil.rmtree(public, ignore_errors=True)
