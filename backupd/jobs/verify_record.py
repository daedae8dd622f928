"""The record of one verification of a stored backup: what the audit trail keeps next to the runs."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum

from ..util.clock import iso, parse_iso, utc_now

MAX_PROBLEMS = 50           # problem lines kept in a record (the count says how many there were)


class VerifyStatus(StrEnum):
    """How a verification ended. `error`: it could not finish (a destination unreachable), which says
    nothing about the backup; `failed`: the stored copy does not verify."""
    SUCCESS = "success"
    FAILED = "failed"
    ERROR = "error"


@dataclass
class VerifyRecord:
    job: str
    archive: str
    destination: str
    run_id: str                         # the run that made the backup ("" when unknown)
    trigger: str                        # schedule | manual
    verify_id: str = field(default_factory=lambda: secrets.token_hex(6))
    kind: str = "verify"
    status: VerifyStatus = VerifyStatus.SUCCESS
    started: datetime = field(default_factory=utc_now)
    ended: datetime | None = None
    members: int = 0
    bytes: int = 0
    sha256: str = ""                    # of the stored file as fetched
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    against_source: dict | None = None  # the spot check's counts, when asked for
    base: str = ""                      # a differential's full (its archive name), checked with it

    def finish(self, status: VerifyStatus, problems: list[str] = ()) -> "VerifyRecord":
        self.status, self.ended = status, utc_now()
        self.problems, self.problem_count = list(problems[:MAX_PROBLEMS]), len(problems)
        return self

    @property
    def ok(self) -> bool:
        return self.status == VerifyStatus.SUCCESS

    def to_dict(self) -> dict:
        data = asdict(self)
        data["started"], data["ended"] = iso(self.started), iso(self.ended)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "VerifyRecord":
        data = dict(data)
        data["status"] = VerifyStatus(data.get("status", VerifyStatus.ERROR))
        data["started"], data["ended"] = parse_iso(data.get("started")), parse_iso(data.get("ended"))
        return cls(**data)
