"""One run of one job: the steps of its action (archive -> store -> spool bound -> pending uploads -> prune),
then the record.

A run builds everything it uses from the configuration it is given and shares nothing with other runs,
so a failing run cannot disturb the daemon or the next run.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .. import __version__
from ..cancel import CancelToken, Cancelled
from ..config import Config, JobConfig
from ..destinations.base import ArchiveMeta
from ..sources.process import kill_listed
from ..util.clock import iso, utc_now
from ..archive.base_index import BaseError, BaseIndex
from ..archive.delta import DeltaMaker
from ..archive.differ import Differ
from ..util.names import DIFFERENTIAL, FULL
from . import sets
from .sets import manifest_copy
from .actions.archive import ArchiveContext, archive_name, host_name, write_archive
from .actions.pending import upload_pending
from .actions.prune import PruneContext, after_run as prune_after_run
from .actions.spooled import bound as bound_spool
from .actions.store import StoreContext, store_everywhere
from . import notify
from .errors import RunFailed
from .history import History
from .result import ArchiveInfo, Category, RunProgress, RunRecord, Status, Trigger, new_run_id
from .spool import Spool

log = logging.getLogger("backupd.run")


class Action(StrEnum):
    """What a run does (backupctl trigger: a backup; trigger --upload-pending: only the pending uploads)."""
    BACKUP = "backup"
    UPLOAD_PENDING = "upload-pending"


@dataclass
class Run:
    """Everything one run needs; built fresh for every run."""

    config: Config
    job: JobConfig
    history: History
    trigger: Trigger = Trigger.MANUAL
    run_id: str = field(default_factory=new_run_id)
    cancel: CancelToken = field(default_factory=CancelToken)
    progress: RunProgress = field(default_factory=RunProgress)
    action: Action = Action.BACKUP
    full: bool = False          # a differential job makes a new full this time (backupctl trigger --full)

    def __post_init__(self):
        self.trigger, self.action = Trigger(self.trigger), Action(self.action)
        self.record = RunRecord(run_id=self.run_id, job=self.job.name, trigger=self.trigger)
        self.archive_name = archive_name(self.job.name, self.record.started, self.run_id, bool(self.job.encrypt_to))
        self.spool = Spool(self.config.daemon.state_dir)
        self.archive_path: Path | None = None       # in the spool, once the archive step committed it
        self.extra = {"run_id": self.run_id, "job": self.job.name}
        self._ending = threading.Lock()             # the run's own end and abandon(): only one of them happens
        self._ended = self._abandoned = False

    @property
    def hook_trigger(self) -> str:
        """BACKUPD_TRIGGER of its hooks: what started it, or upload-pending for that action."""
        return Action.UPLOAD_PENDING.value if self.action == Action.UPLOAD_PENDING else self.trigger.value

    def execute(self) -> RunRecord:
        """Run to the end; never raises: the outcome is in the returned record."""
        self.history.save(self.record)
        log.info("run started", extra={**self.extra, "trigger": self.trigger, "action": self.action})
        notify.run_started(self.record, self.job, self.hook_trigger)    # handed over, never waited for
        try:
            for step in ACTIONS[self.action]:
                step(self)
            if self.record.status == Status.RUNNING:
                self.record.status = Status.SUCCESS
        except Cancelled as exc:
            self.record.interrupt(f"run cancelled: {exc}; nothing partial was kept")
        except RunFailed as exc:
            self.record.fail(exc.category, str(exc))
        except Exception as exc:  # a bug must end this run, never the daemon
            log.exception("run crashed", extra=self.extra)
            self.record.fail(Category.INTERNAL, f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self.spool.remove_workdir(self.run_id)
        return self._finish()

    def abandon(self) -> bool:
        """The daemon exits before this run reached a safe point: kill its sources' process groups (they had
        their SIGTERM and the stop's grace), record it, owing its failure alert (the run sends none of its own
        from now on), drop its temporary files. False if the run ended first."""
        with self._ending:
            if self._ended:
                return False
            self._abandoned = True
        killed = kill_listed(self.spool.workdir(self.run_id))
        if killed:
            log.warning("killed the processes of an abandoned run", extra={**self.extra, "process_groups": killed})
        self.record.interrupt("the daemon stopped before this run reached a safe point; nothing partial was kept")
        self.history.owe_alert(self.run_id)
        self.history.save(self.record)
        self.spool.partial_path(self.archive_name).unlink(missing_ok=True)
        self.spool.remove_workdir(self.run_id)
        return True

    # -- the steps ---------------------------------------------------------------------------------
    def _archive(self) -> None:
        plan, differ = self._plan()
        self.archive_name = archive_name(self.job.name, self.record.started, self.run_id,
                                         bool(self.job.encrypt_to), plan.base_run_id)
        keep = (manifest_copy(self.config.daemon.state_dir, self.job.name, self.archive_name)
                if self.job.differential and plan.kind == FULL else None)
        context = ArchiveContext(sources=self.config.job_sources(self.job), spool=self.spool,
                                 level=self.job.compression_level, header=self._header(plan), cancel=self.cancel,
                                 progress=self.progress, log_extra=self.extra, encrypt_to=self.job.encrypt_to,
                                 differ=differ, keep_manifest=keep,
                                 blocks_for=DeltaMaker(self.job.delta_files).wants if keep and self.job.delta_files
                                 else None)
        self.archive_path, stats = write_archive(context, self.archive_name, self.run_id)
        base = plan.base.archive if plan.base else None
        self.record.archive = ArchiveInfo(name=self.archive_name, size=stats.size, sha256=stats.sha256,
                                          members=stats.members, bytes_in=stats.bytes_in, kind=plan.kind,
                                          base=base.name if base else "", base_run_id=plan.base_run_id,
                                          base_sha256=base.sha256 if base else "",
                                          base_size=base.size if base else 0, set_size=plan.set_size + stats.size)
        self.record.warnings = stats.warning_count
        self.history.save(self.record)      # a stop from here on finds the archive in the record

    def _plan(self):
        """Full or differential (jobs/sets.py), and the Differ a differential compares with."""
        plan = sets.plan(self.job, self.history, self.config.daemon.state_dir, self.config.destinations,
                         self.record.started, asked_full=self.full)
        differ = None
        if plan.kind == DIFFERENTIAL:
            try:
                deltas = DeltaMaker(self.job.delta_files) if self.job.delta_files else None
                differ = Differ(BaseIndex.load(plan.manifest), self.job.detect, deltas)
            except BaseError as exc:
                plan = sets.full(f"{exc}")
            if differ is not None and not differ.base.files:
                differ, plan = None, sets.full("its full lists no file it could be compared with (made by an "
                                                "older backupd, or of command output only)")
            elif differ is not None and differ.base.header.get("sources") != list(self.job.sources):
                differ, plan = None, sets.full("the job's sources changed since its full (a removed one could "
                                                "not be removed by restoring a differential)")
        log.info("backup kind", extra={**self.extra, "kind": plan.kind, "reason": plan.reason,
                                       "base": plan.base.archive.name if plan.base else None})
        return plan, differ

    def _store(self) -> None:
        if not store_everywhere(self._store_context(), self.job.destinations, self.archive_path,
                                self._meta(), self.record):
            self.archive_path.unlink(missing_ok=True)

    def _bound_spool(self) -> None:
        limit = self.spool.limit(self.config.daemon.spool_max)
        dropped = bound_spool(self.history, self.spool, limit, self.job.name, self.extra)
        if dropped:
            self.record.note = "; ".join(filter(None, [self.record.note, *dropped]))

    def _upload_pending(self) -> None:
        upload_pending(self._store_context(), self.spool, self.record,
                       include_held=self.action == Action.UPLOAD_PENDING)

    def _prune(self) -> None:
        context = PruneContext(job=self.job, history=self.history, state_dir=self.config.daemon.state_dir,
                               by=f"run {self.run_id}", log_extra=self.extra, cancel=self.cancel)
        prune_after_run(context, self.record, self.config.destinations)

    def _store_context(self) -> StoreContext:
        return StoreContext(destinations=self.config.destinations, state_dir=self.config.daemon.state_dir,
                            history=self.history, cancel=self.cancel, progress=self.progress.set,
                            log_extra=self.extra)

    def _header(self, plan) -> dict:
        header = {"job": self.job.name, "run_id": self.run_id, "host": host_name(),
                  "trigger": self.trigger, "started": iso(self.record.started),
                  "sources": list(self.job.sources), "backupd_version": __version__, "kind": plan.kind}
        if plan.base is not None:
            base = plan.base.archive
            header["base"] = {"archive": base.name, "run_id": plan.base.run_id, "sha256": base.sha256,
                              "size": base.size}
        return header

    def _meta(self) -> ArchiveMeta:
        archive = self.record.archive
        return ArchiveMeta(name=archive.name, job=self.job.name, run_id=self.run_id, host=host_name(),
                           size=archive.size, sha256=archive.sha256, created=iso(self.record.started),
                           base=archive.base)

    def _finish(self) -> RunRecord:
        with self._ending:
            if self._abandoned:             # recorded, and its alert owed, by abandon()
                return self.record
            self._ended = True
        self.record.ended = utc_now()
        self.progress.set(self.record.status)
        self.history.save(self.record)
        self._keep_base()
        error, archive = self.record.error, self.record.archive
        level = logging.INFO if self.record.status == Status.SUCCESS else logging.ERROR
        log.log(level, "run finished", extra={
            **self.extra, "status": self.record.status, "trigger": self.trigger,
            "seconds": round((self.record.ended - self.record.started).total_seconds(), 3),
            "archive": archive.name if archive else None, "size": archive.size if archive else None,
            "sha256": archive.sha256 if archive else None,
            "error_category": error.category if error else None,
            "error": error.message if error else None})
        notify.run_ended(self.record, self.job, self.hook_trigger)
        return self.record


    def _keep_base(self) -> None:
        """A differential job's successful full: its manifest copy becomes the job's only one."""
        archive = self.record.archive
        if self.job.differential and archive and archive.kind == FULL and self.record.status == Status.SUCCESS:
            sets.keep_only(self.config.daemon.state_dir, self.job.name, archive.name)


# each action's steps, in order
ACTIONS = {
    Action.BACKUP: (Run._archive, Run._store, Run._bound_spool, Run._upload_pending, Run._prune),
    Action.UPLOAD_PENDING: (Run._upload_pending,),
}
