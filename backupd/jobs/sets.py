"""Backup sets: whether a run makes a full or a differential, and against which full.

A set is one full and differentials against it (never a chain). A differential job's run is a full when
asked (`trigger --full`), when the job has no successful full yet, when that full is `full_every.age` old,
when the set's newest differential reached `full_every.size` (each differential holds every change since the
full, so the newest one is what the next will cost at least: their sum would grow with the square of the
days and start a new set long before one pays), when a verification found the full damaged,
when the full's manifest copy is gone, or when the full is missing at one of the job's destinations (a
differential there could not be restored: a full costs more bytes once and keeps every destination
restorable). A failed full never becomes a base.

The full's MANIFEST.json is kept, compressed, in the state directory's `bases/<job>/`: it is all a
differential compares with (no other local state); the copy of an unencrypted full lost with the state
directory is read back from a destination."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping

from ..config import DestinationConfig, JobConfig
from ..config.keep import format_duration
from ..destinations import registry
from ..destinations.base import DestinationError
from ..util.clock import parse_iso
from ..util.names import DIFFERENTIAL, FULL, fulls_of, kind_of
from ..util.units import human_size
from .history import History
from .result import ArchiveInfo, RunRecord, Status, Trigger

log = logging.getLogger("backupd.run")
RECORDS_SCANNED = 5000          # runs looked through for the set's full and differentials


@dataclass(frozen=True)
class Plan:
    kind: str                   # FULL or DIFFERENTIAL
    reason: str                 # why, for the log
    base: RunRecord | None = None
    set_size: int = 0           # the full and the set's differentials before this run
    manifest: Path | None = None

    @property
    def base_run_id(self) -> str:
        return self.base.run_id if self.base else ""


def bases_dir(state_dir: Path, job: str) -> Path:
    return Path(state_dir) / "bases" / job


def manifest_copy(state_dir: Path, job: str, archive: str) -> Path:
    return bases_dir(state_dir, job) / f"{archive}.manifest.zst"


def full(reason: str) -> Plan:
    return Plan(FULL, reason)


def plan(job: JobConfig, history: History, state_dir: Path, destinations: Mapping[str, DestinationConfig],
         now: datetime, asked_full: bool = False) -> Plan:
    """What this run of `job` makes (see the module's docstring)."""
    if not job.differential:
        return full("differential is off")
    _drop_partial_copies(state_dir, job.name)
    if asked_full:
        return full("a full was asked for")
    base, differentials = current_set(history, job.name)
    if base is None:
        base, differentials = listed_set(job, state_dir, destinations)
    if base is None:
        return full("the job has no successful full yet")
    reason = _full_needed(job, history, base, differentials, now)
    if reason:
        return full(reason)
    copy = manifest_copy(state_dir, job.name, base.archive.name)
    if not copy.exists() and not _recovered(job, base, copy, state_dir, destinations):
        return full(f"the manifest copy of its full {base.archive.name} is gone")
    missing = missing_at(job, base.archive.name, history, state_dir, destinations)
    if missing:
        return full(f"its full {base.archive.name} is missing at destination '{missing}'")
    set_size = base.archive.size + sum(record.archive.size for record in differentials)
    return Plan(DIFFERENTIAL, f"against the full {base.archive.name}", base, set_size, copy)


def current_set(history: History, job: str) -> tuple[RunRecord | None, list[RunRecord]]:
    """The newest successful full of `job` and the successful differentials made against it."""
    differentials = []
    for record in history.runs(job, limit=RECORDS_SCANNED):
        archive = record.archive
        if record.status != Status.SUCCESS or archive is None:
            continue
        if archive.kind == DIFFERENTIAL:
            differentials.append(record)
        else:
            return record, [d for d in differentials if d.archive.base == archive.name]
    return None, []


def listed_set(job: JobConfig, state_dir: Path,
               destinations: Mapping[str, DestinationConfig]) -> tuple[RunRecord | None, list[RunRecord]]:
    """With no full in the history (a reinstalled machine), the newest full of this job and host that the
    job's first listable destination holds, and its differentials there, as records."""
    from .actions.archive import archive_pattern, host_name
    pattern = archive_pattern(job.name, host_name())
    for name in job.destinations:
        destination = registry.build(destinations[name], state_dir)
        try:
            listed = [item for item in destination.list(job.name) if pattern.fullmatch(item.name)]
        except DestinationError:
            continue
        finally:
            destination.close()
        fulls = [item for item in listed if kind_of(item.name) == FULL and item.sha256 and item.created]
        if not fulls:
            return None, []
        base = max(fulls, key=lambda item: (item.created, item.name))
        differentials = [_listed_record(item, job.name, base.name) for item in listed
                         if fulls_of(item.name, [(base.name, base.run_id)])]
        return _listed_record(base, job.name), differentials
    return None, []


def _listed_record(item, job: str, base: str = "") -> RunRecord:
    archive = ArchiveInfo(name=item.name, size=item.size, sha256=item.sha256, kind=DIFFERENTIAL if base else FULL,
                          base=base)
    return RunRecord(run_id=item.run_id, job=job, trigger=Trigger.SCHEDULE, status=Status.SUCCESS,
                     started=parse_iso(item.created), archive=archive, note="from a destination's listing")


def _full_needed(job: JobConfig, history: History, base: RunRecord, differentials: list, now) -> str:
    age = (now - base.started).total_seconds()
    if age >= job.full_every.age:
        return f"its full is {format_duration(int(age))} old (full_every.age = {format_duration(job.full_every.age)})"
    newest = differentials[0].archive.size if differentials else 0
    limit = job.full_every.size.limit(base.archive.size)
    if newest >= limit:
        return (f"its newest differential holds {human_size(newest)}, at least {job.full_every.size.describe()} "
                f"({human_size(limit)}; full_every.size)")
    damaged = [name for name in job.destinations if base.archive.name in history.failed_checks(name)]
    if damaged:
        return f"a verification found its full damaged at destination '{damaged[0]}'"
    return ""


def missing_at(job: JobConfig, archive: str, history: History, state_dir: Path,
               destinations: Mapping[str, DestinationConfig]) -> str | None:
    """The first of the job's destinations whose listing lacks `archive` and has no upload of it waiting
    (a destination that cannot be listed now counts as holding it: storing checks again)."""
    waiting = {item["destination"] for item in history.pending(job.name) if item["archive"] == archive}
    for name in job.destinations:
        if name in waiting:
            continue
        try:
            if not holds(destinations[name], state_dir, job.name, archive):
                return name
        except DestinationError as exc:
            log.warning("cannot list a destination to check the set's full", extra={
                "job": job.name, "destination": name, "error": str(exc)})
    return None


def holds(config: DestinationConfig, state_dir: Path, job: str, archive: str) -> bool:
    destination = registry.build(config, state_dir)
    try:
        return any(item.name == archive for item in destination.list(job))
    finally:
        destination.close()


def _recovered(job: JobConfig, base: RunRecord, copy: Path, state_dir: Path,
               destinations: Mapping[str, DestinationConfig]) -> bool:
    """Read the full's MANIFEST.json back from a destination (not for an encrypted full: the daemon holds
    no secret key); True once the copy is in place."""
    if job.encrypt_to or base.archive.name.endswith(".age"):
        return False
    from .base_copy import manifest_from_destination
    for name in job.destinations:
        try:
            if manifest_from_destination(destinations[name], state_dir, base.archive, copy):
                log.info("read the full's manifest back from a destination", extra={
                    "job": job.name, "destination": name, "archive": base.archive.name})
                return True
        except (DestinationError, OSError, ValueError) as exc:
            log.warning("cannot read the full's manifest back", extra={
                "job": job.name, "destination": name, "error": str(exc)})
    return False


def keep_only(state_dir: Path, job: str, archive: str) -> None:
    """After a successful full: its manifest copy is the job's only one."""
    folder = bases_dir(state_dir, job)
    keep = manifest_copy(state_dir, job, archive).name
    for path in folder.glob("*.manifest.zst*") if folder.is_dir() else ():
        if path.name != keep:
            path.unlink(missing_ok=True)


def _drop_partial_copies(state_dir: Path, job: str) -> None:
    """What a kill while a full's manifest copy was being written left behind."""
    folder = bases_dir(state_dir, job)
    for path in folder.glob("*.partial") if folder.is_dir() else ():
        path.unlink(missing_ok=True)
