"""Fixtures for tests that boot a real systemd: skipped without root + CAP_SYS_ADMIN, never skipped in CI."""
from __future__ import annotations

import pytest

from backupd_install import host_paths
from private_systemd import PrivateSystemd, require_private_systemd


@pytest.fixture
def private_systemd(tmp_path):
    """A freshly booted private systemd (the project and its venv visible read-only); powered off afterwards."""
    require_private_systemd()
    system = PrivateSystemd(tmp_path, binds=host_paths())
    with system:
        yield system
