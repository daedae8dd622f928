"""The one Destination contract suite, run against the local and the Google Drive destination."""
from __future__ import annotations

import pytest

from backupd.config import LocalDestinationConfig
from backupd.destinations.local import LocalDestination

from tests.destinations.contract import DestinationContract


class TestLocalDestination(DestinationContract):
    @pytest.fixture
    def destination(self, tmp_path):
        return LocalDestination(LocalDestinationConfig(name="disk", path=tmp_path / "store"))

    @pytest.fixture
    def plant_foreign(self):
        def plant(destination):
            (destination.root / "notes.txt").write_text("not a backup")
            (destination.root / "other-tool.tar.zst").write_bytes(b"no sidecar: not backupd's")
        return plant


class TestDriveDestination(DestinationContract):
    @pytest.fixture
    def destination(self, gdrive):
        return gdrive

    @pytest.fixture
    def plant_foreign(self, drive):
        def plant(destination):
            folder = destination.folder_id()
            drive.put_file("notes.txt", b"a user's file", [folder])
            drive.put_file("other-tool.tar.zst", b"untagged", [folder], {"tool": "other"})
            drive.put_file("elsewhere.tar.zst", b"backupd's, but another folder", ["root"],
                           {"backupd": "1", "job": "nightly"})
        return plant
