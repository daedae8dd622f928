"""The record of one run: what backupctl shows, what the audit trail keeps."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Callable

from ..util.clock import iso, parse_iso, utc_now


class Trigger(StrEnum):
    """What started a run."""
    SCHEDULE = "schedule"
    MANUAL = "manual"
    CATCH_UP = "catch-up"


class Status(StrEnum):
    """Where a run is, or how it ended."""
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Category(StrEnum):
    """What a failed run's error is about (the operator's first question: whose problem is it?)."""
    CONFIG = "config"
    SOURCE = "source"
    ARCHIVE = "archive"
    DESTINATION = "destination"
    INTERNAL = "internal"
    STALE = "stale"             # no run failed, but none succeeded for longer than the job's alert_after
    VERIFY = "verify"           # a verification found a stored copy damaged (not a run's error)


class DestinationStatus(StrEnum):
    """One destination's part of a run."""
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    PENDING_UPLOAD = "pending-upload"     # kept in the spool; the next run (or --upload-pending) retries
    LOST = "lost"                         # dropped from a full spool before it could be stored here
    UNKNOWN = "unknown"                   # a killed run's archive, not in the spool: the destination could
                                          # not be asked at the next start whether it holds it


def new_run_id() -> str:
    """Short, sortable-enough, unique: 12 hex digits."""
    return secrets.token_hex(6)


@dataclass
class RunError:
    category: str
    message: str
    kind: str = ""


@dataclass
class DestinationResult:
    name: str
    status: DestinationStatus = DestinationStatus.PENDING
    location: str = ""
    file_id: str = ""
    link: str = ""
    error: str = ""
    kind: str = ""
    permanent: bool = False     # the failure needs the operator: retried after a reload or --upload-pending


@dataclass
class ArchiveInfo:
    name: str
    size: int
    sha256: str
    members: int = 0
    bytes_in: int = 0
    kind: str = "full"          # full | differential (util.names.FULL / DIFFERENTIAL)
    base: str = ""              # a differential's full: its archive name
    base_run_id: str = ""
    base_sha256: str = ""
    base_size: int = 0
    set_size: int = 0           # the full and every differential of its set so far, this one included


@dataclass
class RunProgress:
    """Live progress of a running run; written by the run's thread, read by status queries.

    While archiving, `counter` reads the writer's byte count, so the count is live without callbacks."""

    stage: str = "starting"
    bytes_done: int = 0
    bytes_total: int | None = None
    counter: Callable[[], int] | None = None

    @property
    def done(self) -> int:
        return self.counter() if self.counter else self.bytes_done

    @property
    def percent(self) -> float | None:
        if not self.bytes_total:
            return None
        return round(100.0 * min(self.done, self.bytes_total) / self.bytes_total, 1)

    def set(self, stage: str, done: int = 0, total: int | None = None,
            counter: Callable[[], int] | None = None) -> None:
        self.stage, self.bytes_done, self.bytes_total, self.counter = stage, done, total, counter


@dataclass
class RunRecord:
    run_id: str
    job: str
    trigger: Trigger
    status: Status = Status.RUNNING
    started: datetime = field(default_factory=utc_now)
    ended: datetime | None = None
    archive: ArchiveInfo | None = None
    destinations: list[DestinationResult] = field(default_factory=list)
    error: RunError | None = None
    warnings: int = 0
    note: str = ""              # what happened, when that is not obvious (a run reconciled after a stop)
    pid: int = 0

    def fail(self, category: Category, message: str, kind: str = "") -> None:
        self.status = Status.FAILED
        self.error = RunError(category=category, message=message, kind=kind)

    def interrupt(self, message: str) -> None:
        """The run stopped before its end (a stop, a cancel, a dead process); `ended` is now unless set."""
        self.status = Status.INTERRUPTED
        self.error = RunError(category=Category.INTERNAL, message=message)
        self.ended = self.ended or utc_now()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["started"], data["ended"] = iso(self.started), iso(self.ended)
        data.pop("pid")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        data = dict(data)
        data.pop("pid", None)
        data["trigger"], data["status"] = Trigger(data["trigger"]), Status(data.get("status", Status.RUNNING))
        data["started"] = parse_iso(data.get("started"))
        data["ended"] = parse_iso(data.get("ended"))
        data["archive"] = ArchiveInfo(**data["archive"]) if data.get("archive") else None
        data["destinations"] = [_destination(d) for d in data.get("destinations") or []]
        data["error"] = _error(data["error"]) if data.get("error") else None
        return cls(**data)


def _destination(data: dict) -> DestinationResult:
    return DestinationResult(**{**data, "status": DestinationStatus(data.get("status", "pending"))})


def _error(data: dict) -> RunError:
    return RunError(**{**data, "category": Category(data["category"])})
