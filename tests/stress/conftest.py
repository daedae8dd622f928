"""Fixtures of the stress suite: real daemons (stopped afterwards) and the figures each test reports.

Every stress test reports what it measured through `figures(...)`: the line is printed at once (outside pytest's
capture, so CI output shows it without -s) and again in a "stress figures" section at the end of the run.
"""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import Daemon

_REPORTED: list[str] = []


@pytest.fixture
def figures(request, capsys):
    """figures(**values): one line `stress <test>: key=value ...` in the output."""
    started = time.monotonic()

    def report(**values) -> None:
        shown = " ".join(f"{key}={value}" for key, value in values.items())
        line = f"stress {request.node.name}: {shown} seconds={time.monotonic() - started:.1f}"
        _REPORTED.append(line)
        with capsys.disabled():
            print(f"\n{line}", flush=True)
    return report


def pytest_terminal_summary(terminalreporter):
    if _REPORTED:
        terminalreporter.write_sep("=", "stress figures")
        for line in _REPORTED:
            terminalreporter.write_line(line)


class NotifyDrainer(threading.Thread):
    """Reads the daemons' sd_notify datagrams as systemd does, all the time: a receiving socket holds only
    net.unix.max_dgram_qlen (10) of them, and a daemon whose notifications are not read blocks on the next."""

    def __init__(self, started: list[Daemon]) -> None:
        super().__init__(daemon=True, name="notify-drainer")
        self.started = started
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            for daemon in list(self.started):
                receiver = daemon.notify
                if receiver is not None:
                    with contextlib.suppress(OSError, ValueError):
                        receiver.drain()


@pytest.fixture
def daemons(tmp_path):
    """daemons(config, env=..., launch=...) starts a real backupd on `config` (a path); all are killed at the end."""
    started: list[Daemon] = []
    drainer = NotifyDrainer(started)
    drainer.start()

    def start(config: Path, *args: str, env: dict | None = None, launch: tuple[str, ...] = ()) -> Daemon:
        daemon = Daemon(config.parent, config, env, launch=launch)
        started.append(daemon)
        return daemon.start(*args)

    yield start
    drainer.stopping.set()
    drainer.join(5)
    for daemon in started:
        if daemon.proc is not None:
            daemon.proc.kill()
            daemon.proc.wait()
            daemon.stop()
