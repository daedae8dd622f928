"""Fixtures for destination tests: the loopback Drive, gdrive configs, archives with their metadata."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.destinations.helpers import CHUNK, gdrive_config, make_archive
from tests.fakes.drive import DriveServer
from tests.fakes.oauth import new_key



@pytest.fixture(scope="session")
def rsa_key():
    """One RSA key for the whole session (generated here, never stored in the repository)."""
    return new_key()


@pytest.fixture
def drive():
    with DriveServer() as server:
        yield server


@pytest.fixture
def sa_file(drive, rsa_key, tmp_path) -> Path:
    return drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account(key=rsa_key))


@pytest.fixture
def gdrive(drive, sa_file):
    """A DriveDestination on the loopback Drive (service account, short backoff)."""
    from backupd.destinations.gdrive.destination import DriveDestination

    destination = DriveDestination(gdrive_config(drive, sa_file), retry_base=0.01)
    yield destination
    destination.close()


@pytest.fixture
def archive(tmp_path):
    return make_archive(tmp_path, 2 * CHUNK + 1000)


@pytest.fixture
def big_archive(tmp_path):
    """An archive of 21 chunks (20 full 256 KiB chunks and a short last one)."""
    return make_archive(tmp_path, 20 * CHUNK + 4321)
