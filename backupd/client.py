"""Talk to a running backupd from an application: status, trigger a backup (and wait for it), history, backups
present, next scheduled run. Standard library only (plus backupd's wire protocol): importing it loads neither
the Google libraries nor the scheduler, so an application may install backupd with `pip install --no-deps`.

    from backupd.client import Client, BackupFailed
    client = Client()                                    # $BACKUPD_SOCKET or /run/backupd/backupd.sock
    try:
        record = client.trigger(wait=True, on_progress=lambda p: print(p.stage, p.percent))
        print(record.archive_name, record.link)          # the Drive link, when a gdrive destination has it
    except BackupFailed as failed:
        print(failed.record.error.category, failed.record.error.message)

Every method returns plain frozen dataclasses (to_dict() gives their JSON form) and raises a ClientError:
DaemonUnreachable, PermissionDenied, RemoteError (the daemon said no) or BackupFailed (a waited-for run failed).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from .cli.ctl_call import Busy, NoAnswer, Request
from .daemon import protocol as proto
from .destinations.base import StoredBackup as _Stored   # stdlib only, as the rest

DEFAULT_SOCKET = "/run/backupd/backupd.sock"
DEFAULT_TIMEOUT = 120.0      # seconds the daemon may take to answer (a listing may ask Google Drive)


# -- errors -------------------------------------------------------------------------------------------------------
class ClientError(Exception):
    """Anything that kept a request from its result; the message is one line."""


class DaemonUnreachable(ClientError):
    """No daemon answered at the socket (not running, busy for the whole timeout, silent, or garbled)."""


class PermissionDenied(ClientError):
    """The socket or the daemon refused this user: it must be root, the daemon's user or in its control group."""


class RemoteError(ClientError):
    """The daemon answered with an error: `code` says what kind ('failed', 'bad_args', ...), `details` more."""

    def __init__(self, message: str, code: str = "failed", details: dict | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, details or {}


class BackupFailed(ClientError):
    """A run waited for ended without success; `record` says how (record.error: category and message)."""

    def __init__(self, record: "RunRecord") -> None:
        error = record.error
        why = f"{error.category}: {error.message}" if error else "no error recorded"
        super().__init__(f"run {record.run_id} of job {record.job} {record.status}: {why}")
        self.record = record


# -- results ------------------------------------------------------------------------------------------------------
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
    """The archive a run wrote: its size and sha256, how many members it holds, how many bytes went in."""

    name: str
    size: int
    sha256: str
    members: int
    bytes_in: int


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


@dataclass(frozen=True)
class JobStatus(_Plain):
    name: str
    schedule: str
    timezone: str
    next_run: datetime | None = None
    last_run: RunRecord | None = None       # the newest finished run
    running: Progress | None = None
    pending_uploads: int = 0

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
    file_id and link), and which destination holds it."""

    destination: str = ""


@dataclass(frozen=True)
class Listing(_Plain):
    backups: tuple[StoredBackup, ...] = ()
    errors: tuple[str, ...] = field(default=())     # destinations that could not be listed, one line each


# -- the client ---------------------------------------------------------------------------------------------------
class Client:
    """One daemon's control socket. `timeout`: seconds the daemon may take to answer (while a trigger waits:
    may stay silent; it reports progress twice a second). A busy daemon is asked again within the timeout."""

    def __init__(self, socket: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket = os.fspath(socket or os.environ.get("BACKUPD_SOCKET") or DEFAULT_SOCKET)
        self.timeout = timeout

    def request(self, command: str, args: dict | None = None, on_event: Callable[[dict], None] | None = None,
                waiting: bool = False) -> dict:
        """One request as the daemon answers it (a dict): what the typed methods and `backupctl --json` use."""
        call = Request(self.socket, command, args or {}, self.timeout, on_event, between_events=waiting)
        try:
            return call.send()
        except proto.RemoteError as exc:
            if exc.code == "not_permitted":
                raise PermissionDenied(f"the daemon at {self.socket} refused this user ({exc.message}): be root, "
                                       "its user, or in its control group") from None
            raise RemoteError(exc.message, exc.code, exc.details) from None
        except PermissionError as exc:
            raise PermissionDenied(f"cannot open the control socket {self.socket}: {exc.strerror}; be root, the "
                                   "daemon's user, or in its control group") from None
        except (Busy, NoAnswer) as exc:
            raise DaemonUnreachable(f"the daemon at {self.socket} {'is busy: ' if isinstance(exc, Busy) else ''}"
                                    f"{exc}") from None
        except proto.ProtocolError as exc:
            raise DaemonUnreachable(f"the daemon at {self.socket} did not answer properly: {exc}") from None
        except OSError as exc:
            raise DaemonUnreachable(f"cannot reach the daemon at {self.socket}: {exc.strerror or exc}; "
                                    "is it running?") from None

    def status(self) -> DaemonStatus:
        """The daemon, and each job's schedule, next run, newest finished run and run in progress."""
        return self._parse("status", DaemonStatus.from_dict, self.request("status"))

    def trigger(self, job: str | None = None, wait: bool = False,
                on_progress: Callable[[Progress], None] | None = None,
                upload_pending: bool = False) -> RunRecord | Started:
        """Start a run of `job` (None: the only job). With `wait`, return its RunRecord once it ended, calling
        on_progress(Progress) as it goes, and raise BackupFailed if it did not succeed. A run of the job already
        going is joined, not doubled."""
        def event(data: dict) -> None:
            if on_progress is not None and data.get("type") == "progress":
                on_progress(self._parse("a progress event", Progress._from, data))
        args = {"job": job, "wait": wait, "upload_pending": upload_pending}
        result = self.request("trigger", args, on_event=event, waiting=wait)
        if not wait:
            return self._parse("trigger", Started._from, result)
        record = self._parse("trigger", RunRecord.from_dict, result)
        if not record.ok:
            raise BackupFailed(record)
        return record

    def history(self, job: str | None = None, limit: int = proto.HISTORY_LIMIT) -> list[RunRecord]:
        """The newest `limit` runs (of `job`, or of every job), newest first."""
        result = self.request("history", {"job": job, "limit": limit})
        return self._parse("history", lambda data: [RunRecord.from_dict(run) for run in data["runs"]], result)

    def list_backups(self, job: str | None = None, destination: str | None = None) -> Listing:
        """The archives present at each destination (or at `destination`), with what could not be listed."""
        result = self.request("list", {"job": job, "destination": destination})
        return self._parse("list", lambda data: Listing(
            backups=tuple(StoredBackup._from(item) for item in data["backups"]),
            errors=tuple(str(error) for error in data.get("errors") or ())), result)

    def next_run(self, job: str | None = None) -> datetime | None:
        """When `job` runs next by its schedule (None: the soonest of all jobs); None if nothing is scheduled."""
        status = self.status()
        jobs = [status.job(job)] if job is not None else status.jobs
        return min((j.next_run for j in jobs if j.next_run is not None), default=None)

    @staticmethod
    def _parse(what: str, build, data):
        try:
            return build(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RemoteError(f"the daemon's reply to {what} has an unexpected shape ({type(exc).__name__}: "
                              f"{exc})", "bad_reply") from None
