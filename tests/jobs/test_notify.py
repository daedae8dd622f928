"""Hooks and dead-man pings, run for real: hook processes with their environment, output and timeout; pings
to a ping server on 127.0.0.1, an unreachable one and a slow one."""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest

from backupd.config import JobConfig
from backupd.jobs import notify
from backupd.jobs.outbound import PING_RETRIES, TAIL_LINES, ping, run_hook
from backupd.jobs.result import (ArchiveInfo, Category, DestinationResult, DestinationStatus, RunRecord, Status,
                                 Trigger)
from tests.fakes.ping_server import PingServer
from tests.waiting import wait_for

ENV_DUMP = ["sh", "-c", 'env | grep ^BACKUPD_ | sort > "$0"']


def job_config(**keys) -> JobConfig:
    return JobConfig(name="daily", sources=("files",), destinations=("local", "drive"), **keys)


def record(status=Status.SUCCESS) -> RunRecord:
    run = RunRecord(run_id="3f2a1c0d9e8b", job="daily", trigger=Trigger.SCHEDULE, status=status,
                    archive=ArchiveInfo(name="daily-h-20240501T030000Z-3f2a1c0d.tar.zst", size=1234, sha256="ab" * 32),
                    destinations=[DestinationResult(name="local", status=DestinationStatus.SUCCESS),
                                  DestinationResult(name="drive", status=DestinationStatus.SUCCESS,
                                                    link="https://drive.example/file/d/1")])
    if status == Status.FAILED:
        run.destinations[1].status = DestinationStatus.PENDING_UPLOAD
        run.fail(Category.DESTINATION, "destination 'drive': quota exceeded\n(storage full)")
    return run


def dumped(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_on_success_gets_the_documented_environment(tmp_path):
    out = tmp_path / "env.txt"
    notify.run_ended(record(), job_config(on_success=(*ENV_DUMP, str(out))))
    assert notify.drain(30)
    assert dumped(out) == {"BACKUPD_RUN_ID": "3f2a1c0d9e8b", "BACKUPD_JOB": "daily", "BACKUPD_STATUS": "success",
                           "BACKUPD_TRIGGER": "schedule", "BACKUPD_ERROR_CATEGORY": "", "BACKUPD_ERROR": "",
                           "BACKUPD_ARCHIVE": "daily-h-20240501T030000Z-3f2a1c0d.tar.zst", "BACKUPD_SIZE": "1234",
                           "BACKUPD_LINK": "https://drive.example/file/d/1"}


def test_on_failure_gets_the_category_and_the_error_on_one_line(tmp_path):
    out, started = tmp_path / "env.txt", tmp_path / "started.txt"
    job = job_config(on_start=(*ENV_DUMP, str(started)), on_failure=(*ENV_DUMP, str(out)),
                     on_success=("sh", "-c", f"touch {tmp_path}/wrong"))
    notify.run_started(RunRecord(run_id="3f2a1c0d9e8b", job="daily", trigger=Trigger.MANUAL), job)
    notify.run_ended(record(Status.FAILED), job)
    assert notify.drain(30)
    assert dumped(started)["BACKUPD_STATUS"] == "running" and dumped(started)["BACKUPD_ARCHIVE"] == ""
    env = dumped(out)
    assert (env["BACKUPD_STATUS"], env["BACKUPD_ERROR_CATEGORY"]) == ("failed", "destination")
    assert env["BACKUPD_ERROR"] == "destination 'drive': quota exceeded (storage full)"
    assert env["BACKUPD_LINK"] == ""            # drive holds nothing: the link of a stored copy only
    assert not (tmp_path / "wrong").exists()


def test_a_hook_that_hangs_is_killed_with_its_process_group_at_its_timeout(tmp_path, caplog):
    pid_file = tmp_path / "child.pid"
    hang = ["sh", "-c", f'sleep 600 & echo $! > {pid_file}; echo waiting; wait']
    with caplog.at_level(logging.INFO, logger="backupd.notify"):
        assert run_hook("on_start", tuple(hang), {}, 1.0, {"job": "daily"}) is None
    child = int(wait_for(pid_file.read_text, what="the hook's child pid"))
    wait_for(lambda: not alive(child), timeout=10, what="the hook's child to be killed too")
    timed_out = [r for r in caplog.records if r.getMessage() == "hook timed out; killed with its process group"]
    assert timed_out and timed_out[0].output == ["waiting"] and timed_out[0].timeout == 1.0


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_failing_hook_is_logged_with_its_last_lines_only(caplog):
    noisy = ("sh", "-c", "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; "
                         "head -c 5000 /dev/zero | tr '\\0' x; echo; exit 3")
    with caplog.at_level(logging.INFO, logger="backupd.notify"):
        assert run_hook("on_failure", noisy, {}, 30.0, {"job": "daily"}) == 3
    failed = [r for r in caplog.records if r.getMessage() == "hook failed; the run's result stands"]
    assert failed[0].exit_code == 3 and len(failed[0].output) == TAIL_LINES
    assert failed[0].output[-2] == "line 99" and failed[0].output[-1] == "x" * 500   # a long line is cut


def test_a_hook_that_cannot_start_is_logged(caplog):
    assert run_hook("on_start", ("/nonexistent/hook",), {}, 5.0, {}) is None
    assert any(r.getMessage() == "hook could not start" for r in caplog.records)


def test_hooks_get_stdin_closed(tmp_path):
    out = tmp_path / "stdin.txt"
    assert run_hook("on_start", ("sh", "-c", f"cat > {out}"), {}, 30.0, {}) == 0   # returns at once: EOF
    assert out.read_text() == ""


def test_pings_start_success_and_fail_with_their_bodies():
    with PingServer() as server:
        job = job_config(ping_url=server.url + "/")
        notify.run_started(RunRecord(run_id="3f2a1c0d9e8b", job="daily", trigger=Trigger.MANUAL), job)
        notify.run_ended(record(), job)
        notify.run_started(RunRecord(run_id="77aa", job="daily", trigger=Trigger.MANUAL), job)
        notify.run_ended(record(Status.FAILED), job)
        assert notify.drain(30)
    base = server.path
    assert server.paths() == [base + "/start", base, base + "/start", base + "/fail"]
    assert [method for method, _, _ in server.pings] == ["POST"] * 4
    assert "daily-h-20240501T030000Z-3f2a1c0d.tar.zst (1234 bytes)" in server.pings[1][2]
    assert server.pings[3][2] == "failed: destination 'drive': quota exceeded (storage full)"


def test_a_stale_job_fails_its_check_with_category_stale(tmp_path):
    out = tmp_path / "env.txt"
    with PingServer() as server:
        notify.job_stale(job_config(on_failure=(*ENV_DUMP, str(out)), ping_url=server.url), "no success for 2d")
        assert notify.drain(30)
    env = dumped(out)
    assert (env["BACKUPD_STATUS"], env["BACKUPD_ERROR_CATEGORY"], env["BACKUPD_ERROR"]) == (
        "stale", "stale", "no success for 2d")
    assert server.pings[0][1:] == (server.path + "/fail", "stale: no success for 2d")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]          # nothing listens there once the probe is closed


def test_an_unreachable_ping_server_is_retried_then_logged_without_the_url_path(caplog):
    url = f"http://127.0.0.1:{closed_port()}/secret-check-uuid"
    assert not ping(url, "", {"job": "daily"}, backoff=0.01)
    failed = [r for r in caplog.records if r.getMessage() == "ping failed; the run's result stands"]
    assert failed[0].attempts == 1 + PING_RETRIES
    assert "secret-check-uuid" not in caplog.text and failed[0].url == "http://127.0.0.1/..."


def test_a_slow_ping_server_is_given_up_on_within_the_budget():
    with PingServer() as server:
        server.release.clear()                          # every request held
        started = time.monotonic()
        assert not ping(server.url, "", {}, timeout=0.5, backoff=0.05, budget=2.0)
        assert time.monotonic() - started < 2.0 + 1.0   # the budget, plus a last attempt's own timeout
        assert len(server.pings) >= 2                   # it was tried again


@pytest.mark.parametrize("status, attempts", [(500, 1 + PING_RETRIES), (404, 1)])
def test_server_errors_are_retried_client_errors_are_not(status, attempts):
    with PingServer(status=status) as server:
        assert not ping(server.url, "", {}, backoff=0.01)
    assert len(server.pings) == attempts
