"""At the daemon's start: settle what a dead process left. Runs it left 'running' are marked interrupted (each
owing its failure alert); one whose archive was already written is reconciled with its destinations (an
archive found there with the same sha256 counts as stored, and owes no alert; one still complete in the spool
waits for the next run's upload); what interrupted stores left at the destinations is removed."""
from __future__ import annotations

import logging
from dataclasses import asdict

from ...config import Config
from ...destinations import registry
from ...destinations.base import ArchiveMeta, DestinationError, StoredBackup
from ...util.clock import iso
from ..history import History
from ..result import DestinationResult, DestinationStatus, RunRecord, Status
from ..spool import Spool
from .archive import host_name

log = logging.getLogger("backupd.recover")
NOT_STORED = "the daemon stopped before the archive was stored here"
KEPT = NOT_STORED + "; it waits in the spool for the next run's upload"
REMOTE_KEPT = ("the daemon stopped while storing the archive here; it waits in the spool and the next run "
               "finds it stored or uploads it")


def recover_at_start(config: Config, history: History) -> list[str]:
    """Mark and reconcile the runs a dead process left, clean the destinations; the interrupted run ids."""
    interrupted = history.mark_interrupted()
    spool = Spool(config.daemon.state_dir)
    for run_id in interrupted:
        record = history.get(run_id)
        if record is not None and record.archive is not None and record.job in config.jobs:
            reconcile(config, history, spool, record)
    clean_destinations(config)
    return interrupted


def reconcile(config: Config, history: History, spool: Spool, record: RunRecord) -> None:
    """Record, for each of the job's destinations, whether the run's archive reached it."""
    meta = ArchiveMeta(name=record.archive.name, job=record.job, run_id=record.run_id, host=host_name(),
                       size=record.archive.size, sha256=record.archive.sha256, created=iso(record.started))
    in_spool = spool.final_path(meta.name)
    in_spool = in_spool.exists() and in_spool.stat().st_size == meta.size
    record.destinations = [_settle(config, history, name, meta, in_spool)
                           for name in config.jobs[record.job].destinations if name in config.destinations]
    stored = [d.name for d in record.destinations if d.status == DestinationStatus.SUCCESS]
    if record.destinations and len(stored) == len(record.destinations):
        record.status, record.error = Status.SUCCESS, None
        history.forgive_alert(record.run_id)        # stored after all: no failure to tell
        record.note = (f"the daemon stopped after the archive was stored; found stored on {', '.join(stored)} "
                       "with the same sha256 at the next start")
    else:
        record.error.message = (f"the daemon stopped while this run stored its archive; at the next start it was "
                                f"found on: {', '.join(stored) or 'none'}"
                                + ("; the rest waits in the spool for the next run" if in_spool else ""))
    history.save(record)
    log.warning("interrupted run reconciled", extra={"run_id": record.run_id, "job": record.job,
                                                     "status": record.status, "stored_on": stored})


def _settle(config: Config, history: History, name: str, meta: ArchiveMeta, in_spool: bool) -> DestinationResult:
    result = DestinationResult(name=name)
    destination = registry.build(config.destinations[name], config.daemon.state_dir)
    try:
        found = None if destination.remote else _find(destination, meta)
    finally:
        destination.close()
    if found is not None:
        result.status, result.location = DestinationStatus.SUCCESS, found.location
        result.file_id, result.link = found.file_id, found.link
    elif in_spool:
        history.add_pending(meta.name, name, meta.job, meta.run_id, asdict(meta))
        result.status = DestinationStatus.PENDING_UPLOAD
        result.error = REMOTE_KEPT if destination.remote else KEPT
    else:
        result.status, result.error = DestinationStatus.FAILED, NOT_STORED
    return result


def _find(destination, meta: ArchiveMeta) -> StoredBackup | None:
    """The destination's copy of the archive if it has one with the same name and sha256."""
    try:
        backups = destination.list(meta.job)
    except DestinationError as exc:
        log.warning("cannot look for an interrupted run's archive", extra={"destination": destination.name,
                                                                           "error": str(exc)})
        return None
    return next((b for b in backups if b.name == meta.name and b.sha256 == meta.sha256), None)


def clean_destinations(config: Config) -> None:
    """Remove what interrupted stores left at every destination (only backupd's own partial files)."""
    for dest_config in config.destinations.values():
        destination = registry.build(dest_config, config.daemon.state_dir)
        try:
            destination.clean_debris()
        except (OSError, DestinationError) as exc:
            log.warning("cannot clean up a destination", extra={"destination": dest_config.name,
                                                                 "error": str(exc)})
        finally:
            destination.close()
