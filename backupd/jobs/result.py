"""The record of one run: what backupctl shows, what the audit trail keeps."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

TRIGGERS = ("schedule", "manual", "catch-up")
STATUSES = ("running", "success", "failed", "interrupted")
CATEGORIES = ("config", "source", "archive", "destination", "internal")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


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
    status: str = "pending"       # pending | success | failed | pending-upload
    location: str = ""
    file_id: str = ""
    link: str = ""
    error: str = ""
    kind: str = ""


@dataclass
class ArchiveInfo:
    name: str
    size: int
    sha256: str
    members: int = 0
    bytes_in: int = 0


@dataclass
class Progress:
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
    trigger: str
    status: str = "running"
    started: datetime = field(default_factory=utc_now)
    ended: datetime | None = None
    archive: ArchiveInfo | None = None
    destinations: list[DestinationResult] = field(default_factory=list)
    error: RunError | None = None
    warnings: int = 0
    pid: int = 0

    def fail(self, category: str, message: str, kind: str = "") -> None:
        self.status = "failed"
        self.error = RunError(category=category, message=message, kind=kind)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["started"], data["ended"] = iso(self.started), iso(self.ended)
        data.pop("pid")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        data = dict(data)
        data.pop("pid", None)
        data["started"] = _parse(data.get("started"))
        data["ended"] = _parse(data.get("ended"))
        data["archive"] = ArchiveInfo(**data["archive"]) if data.get("archive") else None
        data["destinations"] = [DestinationResult(**d) for d in data.get("destinations") or []]
        data["error"] = RunError(**data["error"]) if data.get("error") else None
        return cls(**data)


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
