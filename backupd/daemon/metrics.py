"""The Prometheus textfile (daemon.metrics_file), for node_exporter's textfile collector.

Each write builds a fresh registry from the audit trail, the scheduler and the spool, and hands it to
prometheus_client's write_to_textfile: a temporary file in the same folder renamed over the old one, so a
collector never reads half a file. The file's own age (node_textfile_mtime_seconds) tells a stopped daemon.
"""
from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..config import Config
from ..jobs.history import History
from ..jobs.result import DestinationStatus, RunRecord, Status
from ..jobs.spool import Spool
from ..util.names import DIFFERENTIAL, FULL

ENDED = (Status.SUCCESS, Status.FAILED, Status.INTERRUPTED)     # the statuses a finished run can have
KINDS = (FULL, DIFFERENTIAL)                                    # what a backup can be
JOB, DESTINATION = ["job"], ["job", "destination"]
MODE = 0o644    # node_exporter reads the file as another user: the daemon's umask (0077 under the unit) would not


@dataclass(frozen=True)
class State:
    """What the metrics are read from."""

    config: Config
    history: History
    next_run: Callable[[str], datetime | None]


@dataclass(frozen=True)
class _Job:
    """One job as its metrics see it."""

    name: str
    last: RunRecord | None          # the newest finished run
    success: RunRecord | None       # the newest successful one
    next_run: datetime | None
    stale: bool


def _ended(record: RunRecord | None) -> float | None:
    return None if record is None else (record.ended or record.started).timestamp()


def _took(record: RunRecord | None) -> float | None:
    return None if record is None or record.ended is None else (record.ended - record.started).total_seconds()


def _set_size(record: RunRecord | None) -> int | None:
    """The set's bytes so far; a record from before differentials has none: a full is its own set."""
    if record is None or record.archive is None:
        return None
    return record.archive.set_size or record.archive.size


# name -> (help, the value for one job; None leaves the job's series out)
JOB_GAUGES: dict[str, tuple[str, Callable[[_Job], float | None]]] = {
    "backupd_last_run_timestamp_seconds": ("When the job's newest finished run ended (0: it never ran).",
                                           lambda job: _ended(job.last) or 0.0),
    "backupd_last_success_timestamp_seconds": ("When the job's newest successful run ended (0: never).",
                                               lambda job: _ended(job.success) or 0.0),
    "backupd_last_run_duration_seconds": ("How long the job's newest finished run took.",
                                          lambda job: _took(job.last)),
    "backupd_last_archive_bytes": ("Size of the archive of the job's newest successful run.",
                                   lambda job: job.success.archive.size if job.success and job.success.archive
                                   else None),
    "backupd_last_set_bytes": ("Bytes of the backup set of the job's newest successful run: its full and the "
                               "differentials up to that run (a full alone: its size).",
                               lambda job: _set_size(job.success)),
    "backupd_next_run_timestamp_seconds": ("When the job's next scheduled run starts.",
                                           lambda job: job.next_run.timestamp() if job.next_run else None),
    "backupd_job_stale": ("1 while the job has not succeeded for longer than its alert_after.",
                          lambda job: 1.0 if job.stale else 0.0),
}


def _jobs(state: State) -> list[_Job]:
    out = []
    for name in state.config.jobs:
        finished = [r for r in state.history.runs(name, limit=5) if r.status != Status.RUNNING]
        out.append(_Job(name=name, last=finished[0] if finished else None,
                        success=state.history.last_success(name), next_run=state.next_run(name),
                        stale=state.history.stale_since(name) is not None))
    return out


def _job_families(state: State) -> Iterator[Metric]:
    jobs = _jobs(state)
    for name, (doc, value_of) in JOB_GAUGES.items():
        family = GaugeMetricFamily(name, doc, labels=JOB)
        for job in jobs:
            if (value := value_of(job)) is not None:
                family.add_metric([job.name], value)
        yield family
    status = GaugeMetricFamily("backupd_last_run_status", "1 on the status of the job's newest finished run.",
                               labels=["job", "status"])
    runs = CounterMetricFamily("backupd_runs", "Runs the audit trail holds, by how they ended.",
                               labels=["job", "status"])
    counts = state.history.run_counts()
    for job in jobs:
        for ended in ENDED:
            status.add_metric([job.name, ended], 1.0 if job.last and job.last.status == ended else 0.0)
            runs.add_metric([job.name, ended], counts.get((job.name, ended), 0))
    kind = GaugeMetricFamily("backupd_last_backup_kind", "1 on the kind (full, differential) of the archive of "
                             "the job's newest successful run.", labels=["job", "kind"])
    for job in jobs:
        if job.success and job.success.archive:
            for name in KINDS:
                kind.add_metric([job.name, name], 1.0 if job.success.archive.kind == name else 0.0)
    yield from (status, runs, kind)


def stored(history: History) -> dict[tuple[str, str], list[int]]:
    """(job, destination) -> [backups, bytes] stored there, as the audit trail knows it (pruned ones gone)."""
    pending = {(item["archive"], item["destination"]) for item in history.pending()}
    deleted = {(item["archive"], item["destination"]) for item in history.deletions()}
    held: dict[tuple[str, str], list[int]] = {}
    for record in history.runs():
        for result in record.destinations if record.archive else ():
            where = (record.archive.name, result.name)
            delivered = result.status == DestinationStatus.SUCCESS or (
                result.status == DestinationStatus.PENDING_UPLOAD and where not in pending)   # uploaded later
            if delivered and where not in deleted:
                totals = held.setdefault((record.job, result.name), [0, 0])
                totals[0] += 1
                totals[1] += record.archive.size
    return held


def _storage_families(state: State) -> Iterator[Metric]:
    backups = GaugeMetricFamily("backupd_destination_backups", "Backups of the job stored at the destination.",
                                labels=DESTINATION)
    size = GaugeMetricFamily("backupd_destination_bytes", "Bytes of the job's backups at the destination.",
                             labels=DESTINATION)
    for (job, destination), (count, total) in sorted(stored(state.history).items()):
        if job in state.config.jobs:
            backups.add_metric([job, destination], count)
            size.add_metric([job, destination], total)
    pending = state.history.pending()
    waiting = GaugeMetricFamily("backupd_pending_uploads", "Archives in the spool waiting for an upload.",
                                labels=DESTINATION)
    per_target: dict[tuple[str, str], int] = {}
    for item in pending:
        per_target[(item["job"], item["destination"])] = per_target.get((item["job"], item["destination"]), 0) + 1
    for labels, count in sorted(per_target.items()):
        waiting.add_metric(list(labels), count)
    spool = Spool(state.config.daemon.state_dir)
    names = {item["archive"] for item in pending}
    yield from (backups, size, waiting,
                GaugeMetricFamily("backupd_spool_bytes", "Bytes of the archives waiting in the spool.",
                                  value=sum(_size(spool.final_path(name)) for name in names)))


def _verify_families(state: State) -> Iterator[Metric]:
    when = GaugeMetricFamily("backupd_last_verify_timestamp_seconds",
                             "When the newest verification of the job's backups at the destination that passed "
                             "or failed ended.", labels=DESTINATION)
    ok = GaugeMetricFamily("backupd_last_verify_ok", "1 if that verification passed, 0 if it found the stored "
                           "copy damaged.", labels=DESTINATION)
    for (job, destination), record in sorted(state.history.last_verdicts().items()):
        if job in state.config.jobs:
            when.add_metric([job, destination], (record.ended or record.started).timestamp())
            ok.add_metric([job, destination], 1.0 if record.ok else 0.0)
    yield from (when, ok)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _Snapshot(Collector):
    """Every family, taken once: the registry of one write."""

    def __init__(self, state: State) -> None:
        self._families = [GaugeMetricFamily("backupd_up", "1 while the daemon runs.", value=1),
                          InfoMetricFamily("backupd", "The daemon's version.", value={"version": __version__}),
                          *_job_families(state), *_storage_families(state), *_verify_families(state)]

    def collect(self) -> list[Metric]:
        return self._families


def registry(state: State) -> CollectorRegistry:
    fresh = CollectorRegistry(auto_describe=False)
    fresh.register(_Snapshot(state))
    return fresh


def write(path: Path, state: State) -> None:
    """Replace `path` with the metrics of `state` (OSError if it cannot be written), readable by everyone.

    write_to_textfile writes `<path>.<pid>.<thread id>` and renames it over `path`, creating it with the
    umask's mode: that file is made here first with MODE, which its truncation keeps."""
    staged = Path(f"{path}.{os.getpid()}.{threading.current_thread().ident}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
    try:
        os.fchmod(fd, MODE)
    finally:
        os.close(fd)
    try:
        write_to_textfile(str(path), registry(state))
    finally:
        staged.unlink(missing_ok=True)      # there only if write_to_textfile named its file otherwise
    if stat.S_IMODE(os.stat(path).st_mode) != MODE:   # the same case: at least the next scrape can read it
        os.chmod(path, MODE)
