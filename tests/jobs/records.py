"""Runs written straight into a real audit trail, as the runner would have recorded them, at times the test
chooses (how tests make a job's last success old without waiting)."""
from __future__ import annotations

from datetime import timedelta

from backupd.jobs.history import History
from backupd.jobs.result import (ArchiveInfo, Category, DestinationResult, DestinationStatus, RunRecord, Status,
                                 Trigger, new_run_id)
from backupd.util.clock import utc_now


def saved_run(history: History, job: str, status: Status = Status.SUCCESS, *, ago: timedelta = timedelta(0),
              took: timedelta = timedelta(seconds=42), size: int = 1000, destinations=("local",),
              error: str = "destination 'drive': quota exceeded") -> RunRecord:
    """A finished run of `job` that ended `ago` before now: a success stored at `destinations`, or a failure
    with `error` (and its archive left pending at the destinations)."""
    ended = utc_now().replace(microsecond=0) - ago
    record = RunRecord(run_id=new_run_id(), job=job, trigger=Trigger.SCHEDULE, status=status, started=ended - took,
                       ended=ended, archive=ArchiveInfo(name=f"{job}-{ended:%Y%m%dT%H%M%S}.tar.zst", size=size,
                                                        sha256="ab" * 32))
    stored = DestinationStatus.SUCCESS if status == Status.SUCCESS else DestinationStatus.PENDING_UPLOAD
    record.destinations = [DestinationResult(name=name, status=stored) for name in destinations]
    if status != Status.SUCCESS:
        record.error = None
        record.fail(Category.DESTINATION, error)
        record.status = status
    history.save(record)
    return record
