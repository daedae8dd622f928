"""A run that ends without sending its own alert still fires on_failure and /fail exactly once: one the daemon
had to abandon at a stop (at the stop when it fits in what is left of it, else at the next start), and one a
killed daemon left running (at the next start; not one found stored after all)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backupd.config import load
from tests.configs import command_source, directory_source, job, write_config
from tests.e2e.watched import ENV_APPEND, appended
from tests.fakes.ping_server import PingServer
from tests.jobs.interrupt import killed_after_storing
from tests.waiting import wait_for

# slow while tmp_path/slow exists: SIGTERM ignored (only the SIGKILL after the source's grace stops it), its pid
# in tmp_path/slow.pid once the trap is set
SLOW_OR_QUICK = 'if [ -e "$0" ]; then trap "" TERM; echo $$ > "$0.pid"; exec sleep 600; fi; echo quick'
ABANDONED = "the daemon stopped before this run reached a safe point; nothing partial was kept"
DEFERRED = ("failure alert of an abandoned run left for the next start: it would not be delivered before the "
            "daemon exits")


@pytest.fixture
def slow(tmp_path):
    """tmp_path/slow: the flag that makes job "main" slow; the slow command is killed after the test."""
    flag = tmp_path / "slow"
    yield flag
    pid_file = Path(f"{flag}.pid")
    if pid_file.exists() and pid_file.read_text().strip():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def config(tmp_path: Path, server: PingServer, daemon: dict | None = None, **main_keys) -> Path:
    """Job "main" (the command, slow or quick) and job "stored" (a folder), each hook writing tmp_path/<job>.env."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "f.txt").write_text("content")
    hooks = {name: {"on_success": [*ENV_APPEND, str(tmp_path / f"{name}.env")],
                    "on_failure": [*ENV_APPEND, str(tmp_path / f"{name}.env")]} for name in ("main", "stored")}
    return write_config(tmp_path, daemon=daemon,
                        jobs={"main": job(["cmd"], ping_url=f"{server.url}/main", **hooks["main"], **main_keys),
                              "stored": job(["files"], **hooks["stored"])},
                        sources={"cmd": command_source(["sh", "-c", SLOW_OR_QUICK, str(tmp_path / "slow")],
                                                       timeout="5m"),
                                 "files": directory_source(tmp_path / "data")})


def start_slow_run(daemon, server: PingServer, slow: Path) -> str:
    """A run of "main" that ignores SIGTERM, its /start delivered; its run id."""
    slow.touch()
    run_id = daemon.ctl_json("trigger", "main")["run_id"]
    wait_for(lambda: Path(f"{slow}.pid").exists() and Path(f"{slow}.pid").read_text().strip(), what="the slow run")
    wait_for(lambda: server.paths() == [f"{server.path}/main/start"], what="the slow run's /start")
    return run_id


def quick_run(daemon, tmp_path: Path, name: str, blocks: int) -> None:
    """A successful run of `name`; once its on_success wrote the `blocks`-th block, every earlier notice of the
    job (its lane delivers them in order) is done too."""
    (tmp_path / "slow").unlink(missing_ok=True)
    assert daemon.ctl_json("trigger", name, "--wait")["status"] == "success"
    wait_for(lambda: len(appended(tmp_path / f"{name}.env")) == blocks, what=f"{name}'s on_success")


def interrupted_alert(env: dict, run_id: str, message: str) -> None:
    assert (env["BACKUPD_RUN_ID"], env["BACKUPD_STATUS"], env["BACKUPD_ERROR_CATEGORY"]) == (
        run_id, "interrupted", "internal")
    assert env["BACKUPD_ERROR"] == message


def fail_pings(server: PingServer) -> list[str]:
    return [body for _, path, body in server.pings if path.endswith("/fail")]


def test_a_run_killed_with_the_daemon_alerts_once_at_the_next_start(tmp_path, start_daemon, slow):
    with PingServer() as server:
        path = config(tmp_path, server)
        daemon = start_daemon(path)
        run_id = start_slow_run(daemon, server, slow)
        daemon.stop(signal.SIGKILL)
        stored_id = killed_after_storing(load(path), job="stored")     # found stored at the next start
        daemon.start()
        quick_run(daemon, tmp_path, "main", blocks=2)
        quick_run(daemon, tmp_path, "stored", blocks=1)
        records = {r["run_id"]: r for r in daemon.ctl_json("history")["runs"]}
        assert (records[run_id]["status"], records[stored_id]["status"]) == ("interrupted", "success")
        message = records[run_id]["error"]["message"]
        main = appended(tmp_path / "main.env")
        interrupted_alert(main[0], run_id, message)
        assert main[1]["BACKUPD_STATUS"] == "success"
        assert [env["BACKUPD_STATUS"] for env in appended(tmp_path / "stored.env")] == ["success"]   # no alert
        assert fail_pings(server) == [f"interrupted: {message}"]
        assert daemon.stop() == 0
        daemon.start()                                                  # delivered: not again
        quick_run(daemon, tmp_path, "main", blocks=3)
        statuses = [env["BACKUPD_STATUS"] for env in appended(tmp_path / "main.env")]
        assert statuses == ["interrupted", "success", "success"]
        assert fail_pings(server) == [f"interrupted: {message}"]


@pytest.mark.parametrize("hook_timeout, at_stop", [("1s", True), ("60s", False)])
def test_a_run_abandoned_at_stop_alerts_once_at_the_stop_or_else_at_the_next_start(tmp_path, start_daemon, slow,
                                                                                    hook_timeout, at_stop):
    with PingServer() as server:
        # stop_timeout 8s: the run gets 4 s, far less than the 60 s the launcher sets between the source's SIGTERM
        # and SIGKILL, and the notices the other 4 s, room for a 1 s hook_timeout (plus 2 s for its output), not for
        # a 60 s one
        daemon = start_daemon(config(tmp_path, server, daemon={"stop_timeout": "8s"}, hook_timeout=hook_timeout),
                              launch=("--term-grace", "60"))
        run_id = start_slow_run(daemon, server, slow)
        assert daemon.stop(signal.SIGTERM) == 0                         # the run is still going: abandoned
        main = appended(tmp_path / "main.env")
        assert len(main) == at_stop and len(fail_pings(server)) == at_stop     # delivered before the exit, or not
        assert any(line.get("message") == DEFERRED for line in daemon.log_lines()) != at_stop
        daemon.start()
        quick_run(daemon, tmp_path, "main", blocks=2)
        main = appended(tmp_path / "main.env")
        interrupted_alert(main[0], run_id, ABANDONED)
        assert main[1]["BACKUPD_STATUS"] == "success"
        assert fail_pings(server) == [f"interrupted: {ABANDONED}"]
        assert daemon.stop() == 0
        daemon.start()
        quick_run(daemon, tmp_path, "main", blocks=3)
        assert fail_pings(server) == [f"interrupted: {ABANDONED}"]
