"""The Daemon's parts and its health: the probes it is given decide whether the watchdog pings."""
from __future__ import annotations

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
