"""A job's scheduled verification (`verify_schedule`): at every destination of the job, its newest backup
and the one verified longest ago (never verified first, oldest first), so that over successive runs every
stored copy is checked and a silently corrupted one is found before it is needed. Each verification is
recorded in the history (kind `verify`); one that fails marks that copy as not ok for retention."""
from __future__ import annotations

import logging

from ..cancel import Cancelled
from ..config import Config
from ..destinations import registry
from ..destinations.base import DestinationError
from .locate import Located, LocateError, full_listed
from .verify import verify_backup
from .verify_record import VerifyRecord, VerifyStatus

log = logging.getLogger("backupd.verify")
NEVER = ""          # sorts before every ISO time: never verified comes first


def choose(backups: list, last_verified: dict[str, str]) -> list:
    """The newest backup, and of the others the one verified longest ago (backups come newest first)."""
    if not backups:
        return []
    rest = sorted(backups[1:], key=lambda b: (last_verified.get(b.name, NEVER), b.created, b.name))
    return backups[:1] + rest[:1]


def verify_job(job_name: str, config: Config, history, cancel=None, trigger: str = "schedule") -> list[VerifyRecord]:
    """Verify the chosen backups of `job_name` at each of its destinations; every result is saved."""
    job = config.jobs[job_name]
    recorded = {r.archive.name: r for r in history.runs(job_name) if r.archive is not None}
    records = []
    for destination in job.destinations:
        for record in _verify_destination(job_name, destination, config, history, recorded, cancel, trigger):
            history.save_verification(record)
            _log(record)
            records.append(record)
    return records


def _verify_destination(job_name, destination, config, history, recorded, cancel, trigger):
    state_dir = config.daemon.state_dir
    try:
        backups = _listed(config, destination, job_name, state_dir)
    except DestinationError as exc:
        yield VerifyRecord(job=job_name, archive="", destination=destination, run_id="", trigger=trigger).finish(
            VerifyStatus.ERROR, [f"could not list the backups: {exc}"])
        return
    last = {}
    for past in reversed(history.verifications(job_name)):
        if past.destination == destination and past.status != VerifyStatus.ERROR:
            last[past.archive] = past.ended.isoformat() if past.ended else NEVER
    for backup in choose(backups, last):
        if cancel is not None and cancel.cancelled:
            return
        run = recorded.get(backup.name)
        full = full_listed(backup, backups)         # a differential's full, if this destination holds it
        found = Located(backup.name, job_name, backup.run_id, run.archive.sha256 if run else backup.sha256,
                        run.archive.size if run else backup.size, (destination,), backup.created, full.base,
                        (run.archive.base_sha256 if run and run.archive.base == full.base else "") or full.base_sha256,
                        full.base_size)
        try:
            yield verify_backup(found, config, state_dir, trigger=trigger, cancel=cancel)
        except (LocateError, Cancelled) as exc:
            yield VerifyRecord(job=job_name, archive=backup.name, destination=destination, run_id=backup.run_id,
                               trigger=trigger).finish(VerifyStatus.ERROR, [f"could not finish: {exc}"])


def _listed(config: Config, destination: str, job_name: str, state_dir) -> list:
    built = registry.build(config.destinations[destination], state_dir)
    try:
        return built.list(job_name)
    finally:
        built.close()


def _log(record: VerifyRecord) -> None:
    level = logging.INFO if record.ok else logging.ERROR if record.status == VerifyStatus.FAILED else logging.WARNING
    log.log(level, "verification %s", record.status, extra={
        "job": record.job, "archive": record.archive, "destination": record.destination,
        "verify_id": record.verify_id, "status": record.status, "problems": record.problems[:5],
        "problem_count": record.problem_count})
