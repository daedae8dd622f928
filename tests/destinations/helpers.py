"""Helpers shared by the destination tests: gdrive configs and random archives with their metadata."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from backupd.config import DriveDestinationConfig
from backupd.destinations.base import ArchiveMeta
from tests.fakes.drive import DriveServer

CHUNK = 256 * 1024
TEST_SETTINGS = {"folder": "backupd/testhost", "chunk_size": CHUNK, "retry_deadline": 5.0, "timeout": 2.0}


def gdrive_config(drive: DriveServer, credentials: Path | str, **overrides) -> DriveDestinationConfig:
    """A gdrive destination on the loopback Drive with small chunks and short deadlines; the rest default."""
    options = {**TEST_SETTINGS, "credentials": str(credentials), "endpoint": drive.url, **overrides}
    return DriveDestinationConfig(name="drive", **options)


def make_archive(directory: Path, size: int, name: str = "nightly-20240101T030000Z.tar.zst",
                 job: str = "nightly", run_id: str = "r1", created: str = "2024-01-01T03:00:00Z"):
    """(path, ArchiveMeta) of a random archive of `size` bytes."""
    data = os.urandom(size)
    path = directory / f"spool-{name}"
    path.write_bytes(data)
    meta = ArchiveMeta(name=name, job=job, run_id=run_id, host="testhost", size=size,
                       sha256=hashlib.sha256(data).hexdigest(), created=created)
    return path, meta
