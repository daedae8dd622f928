"""The client's results: frozen dataclasses built from the daemon's JSON (to_dict() gives it back); keys a
newer daemon adds are ignored. Imported by the typed calls only: building the dataclasses costs start-up time."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..destinations.base import StoredBackup as _Stored   # stdlib only, as the rest
from ..util.names import DIFFERENTIAL, FULL, base_run_of, kind_of
from .errors import RemoteError


def _when(text) -> datetime | None:
    """An ISO-8601 time from the daemon (UTC, 'Z' suffix), or None."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _iso(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return value


class _Plain:
    """Built from the daemon's JSON, keys it does not know ignored (a newer daemon may send more)."""

    @classmethod
    def _from(cls, data: dict, **parsed):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, **parsed})

    def to_dict(self) -> dict:
        """The JSON form: nested results as objects, times as ISO-8601 strings."""
        return dataclasses.asdict(self, dict_factory=lambda pairs: {k: _iso(v) for k, v in pairs})


@dataclass(frozen=True)
class ArchiveInfo(_Plain):
    """The archive a run wrote: its size and sha256, how many members it holds, how many bytes went in; its kind
    (full or differential), a differential's full (base: its name, run id, sha256, size), and the set's size so
    far (the full and its differentials up to this one; 0 from a daemon before differentials)."""

    name: str
    size: int
    sha256: str
    members: int
    bytes_in: int
    kind: str = FULL
    base: str = ""
    base_run_id: str = ""
    base_sha256: str = ""
    base_size: int = 0
    set_size: int = 0

    @property
    def differential(self) -> bool:
        return self.kind == DIFFERENTIAL


@dataclass(frozen=True)
class DestinationResult(_Plain):
    """One destination's part of a run; a Drive upload has `file_id` and `link`."""

    name: str
    status: str                 # success, failed, pending-upload, pending
    location: str = ""
    file_id: str = ""
    link: str = ""
    error: str = ""
    kind: str = ""


@dataclass(frozen=True)
class RunError(_Plain):
    category: str               # config, source, archive, destination, internal
    message: str
    kind: str = ""


@dataclass(frozen=True)
class RunRecord(_Plain):
    """One run as the audit trail keeps it."""

    run_id: str
    job: str
    trigger: str                # schedule, manual, catch-up
    status: str                 # running, success, failed, interrupted
    started: datetime | None = None
    ended: datetime | None = None
    archive: ArchiveInfo | None = None
    destinations: tuple[DestinationResult, ...] = ()
    error: RunError | None = None
    warnings: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        return cls._from(data, started=_when(data.get("started")), ended=_when(data.get("ended")),
                         archive=ArchiveInfo._from(data["archive"]) if data.get("archive") else None,
                         destinations=tuple(DestinationResult._from(d) for d in data.get("destinations") or ()),
                         error=RunError._from(data["error"]) if data.get("error") else None)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def archive_name(self) -> str | None:
        return self.archive.name if self.archive else None

    @property
    def size(self) -> int | None:
        return self.archive.size if self.archive else None

    @property
    def sha256(self) -> str | None:
        return self.archive.sha256 if self.archive else None

    @property
    def kind(self) -> str | None:
        """full or differential; None without an archive."""
        return self.archive.kind if self.archive else None

    @property
    def link(self) -> str | None:
        """The first destination's link to the stored archive (a Google Drive web link), if any."""
        return next((d.link for d in self.destinations if d.link), None)


@dataclass(frozen=True)
class Progress(_Plain):
    """A run in progress: its stage (archiving, uploading to NAME, ...) and bytes so far."""

    run_id: str
    job: str
    stage: str
    bytes_done: int = 0
    bytes_total: int | None = None
    percent: float | None = None


@dataclass(frozen=True)
class Started(_Plain):
    """What trigger() without wait returns; `started` is False when a run of the job was already going."""

    run_id: str
    job: str
    started: bool
    full: bool = False          # the run was asked for a new full (a joined run: what it was asked for)
    note: str = ""


@dataclass(frozen=True)
class JobStatus(_Plain):
    name: str
    schedule: str
    timezone: str
    next_run: datetime | None = None
    last_run: RunRecord | None = None       # the newest finished run
    running: Progress | None = None
    pending_uploads: int = 0
    differential: bool = False              # the job makes differentials between fulls

    @classmethod
    def from_dict(cls, data: dict) -> "JobStatus":
        return cls._from(data, next_run=_when(data.get("next_run")),
                         last_run=RunRecord.from_dict(data["last_run"]) if data.get("last_run") else None,
                         running=Progress._from(data["running"]) if data.get("running") else None)


@dataclass(frozen=True)
class DaemonStatus(_Plain):
    version: str
    pid: int
    uptime_s: float
    config: str
    status_text: str
    jobs: tuple[JobStatus, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> "DaemonStatus":
        return cls._from(data, jobs=tuple(JobStatus.from_dict(job) for job in data.get("jobs") or ()))

    def job(self, name: str) -> JobStatus:
        for job in self.jobs:
            if job.name == name:
                return job
        raise RemoteError(f"no job named {name!r}; jobs: {', '.join(j.name for j in self.jobs) or 'none'}")


@dataclass(frozen=True)
class StoredBackup(_Stored, _Plain):
    """One archive present at a destination (name, size, location, job, run_id, sha256, created, and for Drive
    file_id and link), and which destination holds it; its kind (full or differential, from its name), and for a
    differential its full's run id (base_run) and, when that full is at the same destination, its name (base);
    set_size: the bytes of its set there up to this backup (0: its full is not there)."""

    destination: str = ""
    kind: str = ""
    base: str = ""
    base_run: str = ""
    set_size: int = 0

    @classmethod
    def _from(cls, data: dict, **parsed):
        name = data["name"]
        return super()._from(data, kind=data.get("kind") or kind_of(name),
                             base_run=data.get("base_run") or base_run_of(name) or "", **parsed)

    @property
    def differential(self) -> bool:
        return self.kind == DIFFERENTIAL


@dataclass(frozen=True)
class Listing(_Plain):
    backups: tuple[StoredBackup, ...] = ()
    errors: tuple[str, ...] = field(default=())     # destinations that could not be listed, one line each
