"""Backups placed at a destination directly, with the creation times a test chooses (no backup run needed):
through the local destination's own store(), or as files on the loopback Drive tagged as backupd tags them."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from pathlib import Path

from backupd.config import JobConfig, LocalDestinationConfig
from backupd.config.keep import KeepPolicy
from backupd.destinations.base import ArchiveMeta
from backupd.destinations.local import LocalDestination
from backupd.jobs.actions.archive import archive_name, host_name
from backupd.jobs.actions.prune import PruneContext
from backupd.jobs.history import History
from backupd.util.clock import iso


def backup_meta(job: str, when: datetime, host: str | None = None,
                base_run_id: str = "") -> tuple[ArchiveMeta, bytes]:
    """The metadata backupd would give a backup of `job` made at `when` (a differential against the full of
    run `base_run_id` when given), and some content for it."""
    run_id = secrets.token_hex(6)
    name = archive_name(job, when, run_id, base_run_id=base_run_id)
    if host is not None:
        name = name.replace(f"-{host_name()}-", f"-{host}-", 1)
    data = f"archive {name}\n".encode()
    return ArchiveMeta(name=name, job=job, run_id=run_id, host=host or host_name(), size=len(data),
                       sha256=hashlib.sha256(data).hexdigest(), created=iso(when)), data


def at_local(root: Path, job: str, when: datetime, host: str | None = None, base_run_id: str = "") -> str:
    """Store a backup of `job` dated `when` in the local destination at `root`; its name."""
    meta, data = backup_meta(job, when, host, base_run_id)
    source = root.parent / f"planted-{meta.name}"
    source.write_bytes(data)
    LocalDestination(LocalDestinationConfig(name="local", path=root)).store(source, meta)
    source.unlink()
    return meta.name


def on_drive(drive, folder_id: str, job: str, when: datetime, host: str | None = None,
             base_run_id: str = "") -> str:
    """Put a backup of `job` dated `when` into the Drive folder, tagged as DriveDestination.store tags it."""
    meta, data = backup_meta(job, when, host, base_run_id)
    drive.put_file(meta.name, data, parents=[folder_id], app_properties={
        "backupd": "1", "job": meta.job, "run_id": meta.run_id, "host": meta.host, "sha256": meta.sha256,
        "created": meta.created})
    return meta.name


def context(tmp_path: Path, keep: KeepPolicy, now: datetime | None = None, job: str = "daily",
            destinations=("local",), dry_run: bool = False, timezone: str = "UTC") -> PruneContext:
    """A PruneContext for `job` with policy `keep`, its history in tmp_path/state."""
    config = JobConfig(name=job, sources=("files",), destinations=tuple(destinations), keep=keep, timezone=timezone)
    state = tmp_path / "state"
    return PruneContext(job=config, history=History(state), state_dir=state, by="test", log_extra={},
                        dry_run=dry_run, now=now)
