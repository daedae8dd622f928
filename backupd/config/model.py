"""Typed, frozen configuration objects: what the rest of backupd reads, never raw TOML.

Each table class declares its keys (schema.key): their parsers, defaults and documentation live here and
nowhere else. Source and destination types have their own classes in sources.py and destinations.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from . import cron, fields as f
from .differential import DETECT_MODES, FullEvery, globs
from .keep import KeepPolicy
from .recipients import recipients
from .schema import key, table


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """The [daemon] table."""

    state_dir: Path = key(f.path, Path("/var/lib/backupd"),
                          doc="history database, spool (archives being written or awaiting upload)")
    socket: Path = key(f.path, Path("/run/backupd/backupd.sock"),
                       doc="control socket, bound by the daemon when systemd passes none")
    control_group: str = key(f.string, "backupd", doc="members may use backupctl")
    log_level: str = key(f.one_of("debug", "info", "warning", "error"), "info", doc="least severe level logged")
    log_format: str = key(f.one_of("json", "text"), "json", doc="json (one object per line) or text")
    stop_timeout: float = key(f.duration, 30.0, doc="bounds the whole stop: runs and verifications in progress "
                              "are cancelled and waited for until its last 10 s (half, if shorter), kept for hooks "
                              "and pings")
    metrics_file: Path | None = key(f.metrics_path, None,
                                    doc="Prometheus textfile-collector file rewritten at start, after every run "
                                        "and reload and every few minutes (empty: off)")
    spool_max: int | None = key(f.positive_size, None,
                                doc="archives awaiting upload may take this much of the spool (default: 10GiB "
                                    "or 20% of the state directory's file system, whichever is smaller)")


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """One [jobs.NAME] table."""

    name: str
    schedule: str = key(cron.schedule, "0 3 * * *", doc="5-field crontab, normalised (weekdays by name)")
    timezone: str = key(f.timezone, "UTC", doc="time zone the schedule is read in")
    sources: tuple[str, ...] = key(f.string_list, doc="names of [sources.*] tables, each at most once")
    destinations: tuple[str, ...] = key(f.string_list, doc="names of [destinations.*] tables, each at most once")
    compression_level: int = key(f.integer(1, 22), 3, doc="zstd level")
    encrypt_to: tuple[str, ...] = key(recipients, (), doc="age recipients (public keys) the archive is encrypted "
                                                          "to; empty: not encrypted")
    catch_up: bool = key(f.boolean, True, doc="run once at start if a scheduled run was missed while down")
    misfire_grace: float = key(f.duration_from(1.0, "1s"), 6 * 3600.0,
                               doc="how old a missed slot may be and still run (APScheduler counts whole seconds)")
    verify_schedule: str | None = key(cron.schedule, None,
                                      doc="crontab for verifying the job's stored copies at every destination "
                                          "(its newest backup and the one verified longest ago); default off")
    keep: KeepPolicy = table(KeepPolicy, doc="what pruning keeps at each destination (absent: everything)")
    differential: bool = key(f.boolean, False, doc="runs between fulls store only what changed since the set's "
                                                   "full (restorable with tar -G); off: every run is a full")
    full_every: FullEvery = table(FullEvery, doc="when a differential job makes its next full")
    detect: str = key(f.one_of(*DETECT_MODES), "metadata",
                      doc="metadata: size, mtime and ctime decide (content hashed only where they leave doubt); "
                          "content: every file whose metadata matches is hashed")
    delta_files: tuple[str, ...] = key(globs, (), doc="globs of large files changed in place or appended to: a "
                                                     "differential stores only their changed 1 MiB blocks")
    on_start: tuple[str, ...] | None = key(f.argv, None, doc="command (argv, no shell) run when a run starts")
    on_success: tuple[str, ...] | None = key(f.argv, None, doc="command run when a run stored its backup everywhere")
    on_failure: tuple[str, ...] | None = key(f.argv, None, doc="command run when a run failed to deliver, "
                                                                  "or the job went stale (alert_after)")
    hook_timeout: float = key(f.duration, 60.0, doc="a hook still running after this long is killed, with its "
                                                    "process group")
    ping_url: str | None = key(f.http_url, None, doc="healthchecks.io-style URL: <url>/start, <url>, <url>/fail")
    alert_after: float | None = key(f.duration, None, doc="no success for this long: an error, on_failure and "
                                                          "/fail with category 'stale' (once per episode)")


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """One [sources.NAME] table; each source type is a subclass (sources.py) with that type's keys."""

    type: ClassVar[str]
    name: str


@dataclass(frozen=True, kw_only=True)
class DestinationConfig:
    """One [destinations.NAME] table; each destination type is a subclass (destinations.py)."""

    type: ClassVar[str]
    name: str


@dataclass(frozen=True)
class Config:
    path: Path
    daemon: DaemonConfig
    jobs: dict[str, JobConfig]
    sources: dict[str, SourceConfig]
    destinations: dict[str, DestinationConfig]

    def job_sources(self, job: JobConfig) -> list[SourceConfig]:
        return [self.sources[name] for name in job.sources]

    def job_destinations(self, job: JobConfig) -> list[DestinationConfig]:
        return [self.destinations[name] for name in job.destinations]

    def summary(self) -> str:
        """One line, then each job's keep policy on a line of its own."""
        head = (f"{self.path}: ok: {len(self.jobs)} job(s) ({', '.join(self.jobs) or 'none'}), "
                f"{len(self.sources)} source(s), {len(self.destinations)} destination(s)")
        return "\n".join([head, *(f"  job {name}: {job.keep.describe()}" for name, job in self.jobs.items())])
