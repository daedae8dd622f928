"""Helpers shared by the destination tests: gdrive configs and random archives with their metadata."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from backupd.config import DestinationConfig
from backupd.destinations.base import ArchiveMeta
from tests.fakes.drive import DriveServer

CHUNK = 256 * 1024
GDRIVE_DEFAULTS = {"folder": "backupd/testhost", "shared_drive_id": "", "impersonate": "",
                   "scope": "drive.file", "chunk_size": CHUNK, "retry_deadline": 5.0, "timeout": 2.0}


def gdrive_config(drive: DriveServer, credentials: Path | str, **overrides) -> DestinationConfig:
    options = {**GDRIVE_DEFAULTS, "credentials": str(credentials), "endpoint": drive.url, **overrides}
    return DestinationConfig("drive", "gdrive", options)


def make_archive(directory: Path, size: int, name: str = "nightly-20240101T030000Z.tar.zst",
                 job: str = "nightly", run_id: str = "r1", created: str = "2024-01-01T03:00:00Z"):
    """(path, ArchiveMeta) of a random archive of `size` bytes."""
    data = os.urandom(size)
    path = directory / f"spool-{name}"
    path.write_bytes(data)
    meta = ArchiveMeta(name=name, job=job, run_id=run_id, host="testhost", size=size,
                       sha256=hashlib.sha256(data).hexdigest(), created=created)
    return path, meta
