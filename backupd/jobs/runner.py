"""One run of one job: fresh sources -> archive in the spool -> destinations -> record.

A run builds everything it uses from the configuration it is given and shares nothing with other runs,
so a failing run cannot disturb the daemon or the next run.
"""
from __future__ import annotations

import logging
import re
import socket
import time
from dataclasses import dataclass, field

from .. import __version__
from ..cancel import CancelToken, Cancelled
from ..config import Config, JobConfig
from ..sources import registry as source_registry
from ..sources.base import SourceError
from .history import History
from .result import ArchiveInfo, Progress, RunRecord, iso, new_run_id, utc_now
from .spool import Spool
from .store import store_everywhere, upload_pending

log = logging.getLogger("backupd.run")


class RunFailed(Exception):
    """Ends a run with an error category and a message that says what to do."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def archive_name(job: str, started, run_id: str) -> str:
    return f"{job}-{host_name()}-{started.strftime('%Y%m%dT%H%M%SZ')}-{run_id[:8]}.tar.zst"


@dataclass
class Run:
    """Everything one run needs; built fresh for every run."""

    config: Config
    job: JobConfig
    history: History
    trigger: str = "manual"
    run_id: str = field(default_factory=new_run_id)
    cancel: CancelToken = field(default_factory=CancelToken)
    progress: Progress = field(default_factory=Progress)
    upload_pending_only: bool = False

    def __post_init__(self):
        self.record = RunRecord(run_id=self.run_id, job=self.job.name, trigger=self.trigger)
        self.archive_name = archive_name(self.job.name, self.record.started, self.run_id)
        self.spool = Spool(self.config.daemon.state_dir)
        self.extra = {"run_id": self.run_id, "job": self.job.name}

    def execute(self) -> RunRecord:
        """Run to the end; never raises: the outcome is in the returned record."""
        self.history.save(self.record)
        log.info("run started", extra={**self.extra, "trigger": self.trigger})
        try:
            if not self.upload_pending_only:
                self._backup()
            upload_pending(self)
            if self.record.status == "running":
                self.record.status = "success"
        except Cancelled as exc:
            self.record.fail("internal", f"run cancelled: {exc}; nothing partial was kept")
            self.record.status = "interrupted"
        except RunFailed as exc:
            self.record.fail(exc.category, str(exc))
        except Exception as exc:  # a bug must end this run, never the daemon
            log.exception("run crashed", extra=self.extra)
            self.record.fail("internal", f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self.spool.remove_workdir(self.run_id)
        return self._finish()

    def abandon(self) -> None:
        """The daemon exits before this run reached a safe point: record it, drop its temporary files."""
        self.record.fail("internal", "the daemon stopped before this run reached a safe point; "
                         "nothing partial was kept")
        self.record.status = "interrupted"
        self.record.ended = utc_now()
        self.history.save(self.record)
        self.spool.partial_path(self.archive_name).unlink(missing_ok=True)
        self.spool.remove_workdir(self.run_id)

    def _backup(self) -> None:
        name = self.archive_name
        try:
            stats = self._write_archive(name)
        except BaseException:
            self.spool.discard(name)
            raise
        self.record.archive = ArchiveInfo(name=name, size=stats.size, sha256=stats.sha256,
                                          members=stats.members, bytes_in=stats.bytes_in)
        self.record.warnings = stats.warning_count
        path = self.spool.commit(name)
        meta = self._meta()
        kept = store_everywhere(self, path, meta)
        if not kept:
            path.unlink(missing_ok=True)

    def _write_archive(self, name: str):
        from ..archive.writer import ArchiveWriter   # zstandard loads only when a run needs it
        sources = self._build_sources()
        workdir = self.spool.workdir(self.run_id)
        writer = ArchiveWriter(self.spool.partial_path(name), level=self.job.compression_level,
                               header=self._header(), cancel=self.cancel, on_warning=self._warned)
        self.progress.set("archiving", counter=lambda: writer.bytes_in)
        with writer:
            for source in sources:
                self._write_source(writer, source, workdir)
            stats = writer.finish()
        log.info("archive written", extra={**self.extra, "archive": name, "size": stats.size,
                                           "sha256": stats.sha256, "members": stats.members,
                                           "bytes_in": stats.bytes_in, "warnings": stats.warning_count})
        return stats

    def _build_sources(self) -> list:
        try:
            return [source_registry.build(cfg) for cfg in self.config.job_sources(self.job)]
        except Exception as exc:
            raise RunFailed("config", f"cannot set up the sources: {exc}") from exc

    def _write_source(self, writer, source, workdir) -> None:
        started = time.monotonic()
        before = writer.bytes_in
        try:
            source.write(writer.source(source.name), workdir)
        except SourceError as exc:
            raise RunFailed("source", f"source '{source.name}': {exc}") from exc
        except (Cancelled, RunFailed):
            raise
        except OSError as exc:
            raise RunFailed("archive", f"cannot write the archive while reading source "
                            f"'{source.name}': {exc}; check free space in the state directory") from exc
        log.info("source archived", extra={**self.extra, "source": source.name,
                                           "bytes": writer.bytes_in - before,
                                           "seconds": round(time.monotonic() - started, 3)})

    def _warned(self, member: str, message: str) -> None:
        log.warning("source warning", extra={**self.extra, "member": member, "warning": message})

    def _header(self) -> dict:
        return {"job": self.job.name, "run_id": self.run_id, "host": host_name(),
                "trigger": self.trigger, "started": iso(self.record.started),
                "sources": list(self.job.sources), "backupd_version": __version__}

    def _meta(self):
        from ..destinations.base import ArchiveMeta
        archive = self.record.archive
        return ArchiveMeta(name=archive.name, job=self.job.name, run_id=self.run_id, host=host_name(),
                           size=archive.size, sha256=archive.sha256, created=iso(self.record.started))

    def _finish(self) -> RunRecord:
        self.record.ended = utc_now()
        self.progress.set(self.record.status)
        self.history.save(self.record)
        error = self.record.error
        level = logging.INFO if self.record.status == "success" else logging.ERROR
        log.log(level, "run finished", extra={
            **self.extra, "status": self.record.status, "trigger": self.trigger,
            "seconds": round((self.record.ended - self.record.started).total_seconds(), 3),
            "archive": self.record.archive.name if self.record.archive else None,
            "size": self.record.archive.size if self.record.archive else None,
            "sha256": self.record.archive.sha256 if self.record.archive else None,
            "error_category": error.category if error else None,
            "error": error.message if error else None})
        return self.record
