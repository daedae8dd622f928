"""A stop is bounded by daemon.stop_timeout as a whole: the runs, the scheduled verifications and the drain of
hooks and pings share its one deadline. A run it abandons leaves none of its source's processes behind, even
ones that ignore SIGTERM."""
from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from tests.configs import command_source, directory_source, job, local_destination, write_config
from tests.fakes.drive import DriveServer
from tests.fakes.oauth import new_key
from tests.waiting import wait_for

STOP_TIMEOUT = 4.0
MARGIN = 2.0        # past the deadline: closing the socket and the history, the interpreter's own exit
IGNORES_TERM = ["sh", "-c", "trap '' TERM; sleep 1000"]
APP = """
    import signal, subprocess

    class State:
        def dump(self, folder):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)          # inherited by what it starts
            subprocess.run(["sleep", "1000"])
"""
ABANDONED_RUNS = "runs did not stop in time; recorded as interrupted, their temporary files removed"
ABANDONED_VERIFICATIONS = "verifications did not stop in time; their results are not recorded"


@pytest.fixture(scope="module")
def rsa_key():
    return new_key()


@pytest.fixture
def groups():
    """The process groups a test found; whatever of them is left is killed afterwards."""
    found: list[int] = []
    yield found
    for pgid in found:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stat_fields(pid: str) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def live_members(pgid: int) -> dict[int, str]:
    """The processes of group `pgid` that are not zombies: pid -> its name."""
    members = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = stat_fields(entry)
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            try:
                members[int(entry)] = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:         # ended since the listing
                continue
    return members


def source_group(daemon_pid: int, found: list[int]) -> int:
    """The process group of the daemon's source child, once a `sleep` that ignores SIGTERM runs in it."""
    def child() -> int | None:
        return next((int(pid) for pid in filter(str.isdigit, os.listdir("/proc"))
                     if (fields := stat_fields(pid)) and int(fields[1]) == daemon_pid
                     and int(fields[2]) == int(pid)), None)    # its own group leader: a source's child
    pgid = wait_for(child, what="the source's child process")
    found.append(pgid)
    wait_for(lambda: "sleep" in live_members(pgid).values(), what="sleep, ignoring SIGTERM, in the source's group")
    return pgid


def hanging_sources(tmp_path: Path) -> dict:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "app_state.py").write_text(textwrap.dedent(APP))
    return {"command": command_source(IGNORES_TERM, timeout="1h"),
            "python": {"type": "python", "factory": "app_state:State", "path": [str(app)], "timeout": "1h"}}


@pytest.mark.parametrize("kind", ["command", "python"])
def test_an_abandoned_runs_source_processes_die_before_the_daemon_exits(tmp_path, start_daemon, groups, kind):
    config = write_config(tmp_path, daemon={"stop_timeout": "1s"}, jobs={"hangs": job([kind])},
                          sources=hanging_sources(tmp_path))
    daemon = start_daemon(config)
    daemon.ctl_json("trigger", "hangs")
    pgid = source_group(daemon.proc.pid, groups)
    assert daemon.stop(signal.SIGTERM) == 0
    assert any(line.get("message") == ABANDONED_RUNS for line in daemon.log_lines())   # not ended on its own
    wait_for(lambda: not live_members(pgid), timeout=10, what=f"the end of every process of group {pgid}")


def test_a_stop_during_a_run_and_a_verification_ends_within_stop_timeout(tmp_path, start_daemon, groups, rsa_key):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file.txt").write_text("payload\n" * 100)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    with DriveServer() as drive:
        drive.write_credentials(credentials / "sa.json", drive.oauth.service_account(key=rsa_key))
        remote = {"type": "gdrive", "credentials": "sa.json", "folder": "backupd/stop", "endpoint": drive.url,
                  "retry_deadline": "3s", "timeout": "120s"}
        config = write_config(tmp_path, daemon={"stop_timeout": f"{STOP_TIMEOUT:g}s"},
                              jobs={"verified": job(["files"], ["drive"], verify_schedule="30 4 * * 0"),
                                    "hangs": job(["command"])},
                              sources={"files": directory_source(tmp_path / "data"), **hanging_sources(tmp_path)},
                              destinations={"local": local_destination(tmp_path / "archives"), "drive": remote})
        daemon = start_daemon(config, env={"CREDENTIALS_DIRECTORY": str(credentials)},
                              launch=("--verify-every", "1"))
        assert daemon.ctl_json("trigger", "verified", "--wait")["status"] == "success"
        drive.inject("slow", on="media", delay=60, times=1000)     # a download answered only after a minute
        wait_for(lambda: drive.faults.fired, what="a verification waiting for its download")
        daemon.ctl_json("trigger", "hangs")
        source_group(daemon.proc.pid, groups)
        began = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        took = time.monotonic() - began
        assert took <= STOP_TIMEOUT + MARGIN, f"the stop took {took:.1f}s, stop_timeout is {STOP_TIMEOUT:g}s"
        messages = {line.get("message") for line in daemon.log_lines()}
        assert {ABANDONED_RUNS, ABANDONED_VERIFICATIONS} <= messages         # both were still going at the end
