"""The daemon speaks systemd's protocols: watchdog pings only while healthy, socket activation."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from daemon_harness import BIN
from tests.configs import command_source, job, write_config
from tests.waiting import wait_for

def config(tmp_path):
    return write_config(tmp_path, jobs={"main": job(["cmd"])}, sources={"cmd": command_source(["sh", "-c", "echo hi"])})


def pings_between(daemon, start: float, end: float) -> int:
    return sum(1 for when, fields in daemon.notify.messages if "WATCHDOG" in fields and start <= when < end)


def test_watchdog_pings_at_half_the_interval_and_stop_when_frozen(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path), env={"WATCHDOG_USEC": "400000"})   # ping every 0.2 s
    wait_for(lambda: pings_between(daemon, 0, float("inf")) if daemon.notify.drain() else 0, what="first ping")
    first = time.monotonic()
    wait_for(lambda: daemon.notify.drain() and time.monotonic() - first > 2.0, what="two seconds of pings")
    rate = pings_between(daemon, first, first + 2.0)
    assert 6 <= rate <= 14, f"{rate} pings in 2 s, expected about 10"
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        frozen = time.monotonic() + 0.3       # a ping already in flight may still arrive
        wait_for(lambda: daemon.notify.drain() and time.monotonic() - frozen > 1.5, what="a frozen second")
        assert pings_between(daemon, frozen, frozen + 1.5) == 0
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(lambda: daemon.notify.drain() and pings_between(daemon, resumed, float("inf")) >= 2,
             what="pings to resume")


def test_watchdog_stays_silent_when_the_control_loop_is_stuck(tmp_path, start_daemon):
    """An injected stall: a health probe the test adds fails while the stall file exists."""
    daemon = start_daemon(config(tmp_path), env={"WATCHDOG_USEC": "400000"},
                          launch=("--stall-while", str(tmp_path / "stall")))
    wait_for(lambda: daemon.notify.drain() and pings_between(daemon, 0, float("inf")) >= 2, what="pings")
    (tmp_path / "stall").touch()
    stalled = time.monotonic() + 2.5          # the health check's own timeout is 2 s
    wait_for(lambda: daemon.notify.drain() and time.monotonic() - stalled > 1.5, timeout=20, what="stalled time")
    assert pings_between(daemon, stalled, stalled + 1.5) == 0


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
def test_socket_activation_first_backupctl_starts_the_daemon(tmp_path):
    config_path = config(tmp_path)
    sock = tmp_path / "activated.sock"
    activator = subprocess.Popen(["systemd-socket-activate", "-l", str(sock), str(BIN / "backupd"),
                                  "--config", str(config_path)], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        wait_for(sock.exists, what="the activation socket")
        assert not (tmp_path / "state").exists()          # nothing started yet
        status = subprocess.run([str(BIN / "backupctl"), "--socket", str(sock), "--json", "status"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert '"jobs"' in status.stdout
        assert (tmp_path / "state" / "history.db").exists()
        assert not (tmp_path / "ctl.sock").exists()       # it served the inherited socket, bound none
    finally:
        activator.send_signal(signal.SIGTERM)
        activator.wait(30)
    assert sock.exists(), "the daemon must not unlink a socket it was handed"
    os.unlink(sock)
