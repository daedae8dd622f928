"""At the daemon's start: settle what a dead process left. Runs it left 'running' are marked interrupted (each
owing its failure alert); one whose archive was already written is reconciled with its destinations (what the
run saved as each store finished stands; otherwise an archive found there with the same sha256 counts as
stored, and owes no alert; one still complete in the spool waits for the next run's upload; a destination
that cannot be asked within CHECK_TIMEOUT is recorded unknown, never 'not stored'); what interrupted stores
left at the destinations is removed."""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path

from ...cancel import CancelToken
from ...config import Config
from ...destinations import registry
from ...destinations.base import ArchiveMeta, DestinationError, ErrorKind, StoredBackup
from ...lazy import load_class
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
CHECK_TIMEOUT = 10.0    # seconds the start waits for a destination asked whether it holds a killed run's archive


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
    """Record, for each of the job's destinations, whether the run's archive reached it: what the run saved
    as each store finished stands; the rest is asked of the destination."""
    meta = ArchiveMeta(name=record.archive.name, job=record.job, run_id=record.run_id, host=host_name(),
                       size=record.archive.size, sha256=record.archive.sha256, created=iso(record.started))
    in_spool = spool.final_path(meta.name)
    in_spool = in_spool.exists() and in_spool.stat().st_size == meta.size
    saved = {d.name: d for d in record.destinations if d.status != DestinationStatus.PENDING}
    record.destinations = [saved.get(name) or _settle(config, history, name, meta, in_spool)
                           for name in config.jobs[record.job].destinations if name in config.destinations]
    stored = _named(record, DestinationStatus.SUCCESS)
    if record.destinations and len(stored) == len(record.destinations):
        record.status, record.error = Status.SUCCESS, None
        history.forgive_alert(record.run_id)        # stored after all: no failure to tell
        record.note = f"the daemon stopped after the archive was stored; found stored on {_how_known(saved, stored)}"
    else:
        unknown = _named(record, DestinationStatus.UNKNOWN)
        record.error.message = (f"the daemon stopped while this run stored its archive; at the next start it was "
                                f"found on: {', '.join(stored) or 'none'}"
                                + (f"; could not check: {', '.join(unknown)}" if unknown else "")
                                + ("; the rest waits in the spool for the next run" if in_spool else ""))
    history.save(record)
    log.warning("interrupted run reconciled", extra={"run_id": record.run_id, "job": record.job,
                                                     "status": record.status, "stored_on": stored})


def _named(record: RunRecord, status: DestinationStatus) -> list[str]:
    return [d.name for d in record.destinations if d.status == status]


def _how_known(saved: dict, stored: list[str]) -> str:
    """`stored` and how each was known: saved by the run when its store finished, or found at the start."""
    recorded = [name for name in stored if name in saved]
    found = [name for name in stored if name not in saved]
    how = ([f"{', '.join(recorded)} recorded by the run as its store finished"] if recorded else []) + (
        [f"{', '.join(found)} with the same sha256 at the next start"] if found else [])
    return f"{', '.join(stored)} ({'; '.join(how)})"


def _settle(config: Config, history: History, name: str, meta: ArchiveMeta, in_spool: bool) -> DestinationResult:
    """One destination's result the run did not save: a local one is looked at; a remote one only when the
    spool copy is gone (else the next run's upload finds it stored or stores it)."""
    result, dest_config = DestinationResult(name=name), config.destinations[name]
    remote = load_class(registry.TYPES[dest_config.type]).remote
    found = unchecked = None
    if not remote or not in_spool:
        try:
            found = find_stored(dest_config, config.daemon.state_dir, meta, CHECK_TIMEOUT)
        except DestinationError as exc:
            unchecked = str(exc)
            log.warning("cannot look for an interrupted run's archive", extra={"destination": name,
                                                                               "error": unchecked})
    if found is not None:
        result.status, result.location = DestinationStatus.SUCCESS, found.location
        result.file_id, result.link = found.file_id, found.link
    elif in_spool:
        history.add_pending(meta.name, name, meta.job, meta.run_id, asdict(meta))
        result.status = DestinationStatus.PENDING_UPLOAD
        result.error = REMOTE_KEPT if remote else KEPT
    elif unchecked is not None:
        result.status = DestinationStatus.UNKNOWN
        result.error = f"unknown: could not check {name} at start: {unchecked}"
    else:
        result.status, result.error = DestinationStatus.FAILED, NOT_STORED
    return result


def find_stored(dest_config, state_dir: Path, meta: ArchiveMeta, timeout: float) -> StoredBackup | None:
    """The destination's copy of the archive (listed by its name, with the same sha256), or None if it has
    none; DestinationError if the destination cannot be asked or gives no answer within `timeout` seconds."""
    answer: dict = {}
    cancel = CancelToken()

    def ask() -> None:
        try:
            destination = registry.build(dest_config, state_dir, cancel=cancel)
            try:
                answer["found"] = next((b for b in destination.list(meta.job)
                                        if b.name == meta.name and b.sha256 == meta.sha256), None)
            finally:
                destination.close()
        except Exception as exc:        # noqa: BLE001 - whatever it is, the destination was not checked
            answer["error"] = exc
    asking = threading.Thread(target=ask, name=f"recover-check-{dest_config.name}", daemon=True)
    asking.start()
    asking.join(timeout)
    if asking.is_alive():
        cancel.cancel("the daemon's start does not wait longer")
        raise DestinationError(f"no answer within {timeout:g}s", kind=ErrorKind.NETWORK, permanent=False)
    if "error" in answer:
        raise DestinationError(_reason(answer["error"]), kind=ErrorKind.IO, permanent=False)
    return answer["found"]


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (DestinationError, OSError)) else f"{type(exc).__name__}: {exc}"


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
