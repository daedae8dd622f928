"""Fixtures for end-to-end tests: a real daemon process per test, stopped afterwards."""
from __future__ import annotations

from pathlib import Path

import pytest

from daemon_harness import Daemon


@pytest.fixture
def start_daemon(tmp_path):
    started: list[Daemon] = []

    def start(config: Path, *args: str, **kwargs) -> Daemon:
        daemon = Daemon(tmp_path, config, kwargs.pop("env", None), kwargs.pop("socket", None),
                        kwargs.pop("launch", ()))
        started.append(daemon)
        return daemon.start(*args, **kwargs)

    yield start
    for daemon in started:
        if daemon.proc is not None:
            daemon.proc.kill()
            daemon.proc.wait()
