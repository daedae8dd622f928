"""Typed, frozen configuration objects: what the rest of backupd reads, never raw TOML."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path = Path("/var/lib/backupd")
    socket: Path = Path("/run/backupd/backupd.sock")
    control_group: str = "backupd"
    log_level: str = "info"
    log_format: str = "json"
    stop_timeout: float = 30.0


@dataclass(frozen=True)
class TypedTable:
    """A named table with a `type`; `options` holds the validated keys of that type (see schema.py),
    readable as attributes (`source.path`)."""

    name: str
    type: str
    options: dict = field(default_factory=dict, compare=False)

    def __getattr__(self, key):
        try:
            return self.__dict__["options"][key]
        except KeyError:
            raise AttributeError(key) from None


class SourceConfig(TypedTable):
    """One source (schema.SOURCE_TYPES)."""


class DestinationConfig(TypedTable):
    """One destination (schema.DESTINATION_TYPES)."""


@dataclass(frozen=True)
class JobConfig:
    name: str
    schedule: str = "0 3 * * *"
    timezone: str = "UTC"
    sources: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    compression_level: int = 3
    catch_up: bool = True
    misfire_grace: float = 6 * 3600.0


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
        return (f"{self.path}: ok: {len(self.jobs)} job(s) ({', '.join(self.jobs) or 'none'}), "
                f"{len(self.sources)} source(s), {len(self.destinations)} destination(s)")
