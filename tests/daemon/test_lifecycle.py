"""The Daemon's parts and its health: the probes it is given decide whether the watchdog pings."""
from __future__ import annotations

import os
import signal

import pytest

from backupd import config as config_module
from backupd.daemon.lifecycle import DEFAULT_HEALTH_PROBES, Daemon
from tests.configs import write_config

PARTS = ("history", "runs", "scheduler", "listener", "control", "watchdog", "_lock_file")


@pytest.fixture
def config(tmp_path):
    (tmp_path / "data").mkdir()
    return config_module.load(write_config(tmp_path))


def test_every_part_is_declared_before_start(config):
    daemon = Daemon(config)
    assert {name: getattr(daemon, name) for name in PARTS} == dict.fromkeys(PARTS)


def test_an_unstarted_daemon_is_not_healthy(config):
    assert Daemon(config).health_probes == DEFAULT_HEALTH_PROBES
    assert Daemon(config).healthy() is False


@pytest.mark.parametrize("answers, healthy", [((True, True), True), ((True, False), False), ((), True)])
def test_healthy_only_while_every_probe_says_so(config, answers, healthy):
    asked = []

    def probe(answer):
        return lambda daemon: asked.append(daemon) or answer

    daemon = Daemon(config, health_probes=[probe(answer) for answer in answers])
    assert daemon.healthy() is healthy
    assert all(asked_daemon is daemon for asked_daemon in asked)


def test_a_sigterm_between_start_and_serve_is_kept_and_stops_the_daemon_cleanly(config):
    """The signal handlers are in place from the first line of start(): a SIGTERM that arrives before the
    main loop runs (say, right after READY=1) is a clean stop, not death by the default action."""
    daemon = Daemon(config)
    daemon.start()
    os.kill(os.getpid(), signal.SIGTERM)   # before serve(): the handler records it in the wake socket
    assert daemon.serve() == 0
    assert daemon.history is not None and not daemon.runs.all_active()
