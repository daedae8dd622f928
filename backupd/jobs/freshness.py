"""How fresh each job's backups are: the judgement behind `backupctl check` and the status's warning marker,
and the stale alert (a job with alert_after that has not succeeded for that long, whether or not runs were
attempted: the daemon was down over the slot, the clock jumped, the schedule never fires)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from ..config import Config, JobConfig
from ..util.clock import iso, parse_iso, utc_now
from ..util.units import human_age, human_size
from . import notify
from .history import History
from .result import DestinationStatus, RunRecord, Status

log = logging.getLogger("backupd.alerts")
DEFAULT_MAX_AGE = 26 * 3600.0     # `backupctl check` without --max-age, for a job without alert_after


def finished_at(record: RunRecord) -> datetime:
    return record.ended or record.started


def seconds_since(moment: datetime, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds())


@dataclass(frozen=True)
class Freshness:
    """One job's last success and last run against the age its backups may reach."""

    job: str
    max_age: float
    last_success: RunRecord | None
    last_run: RunRecord | None                       # the newest finished run
    age: float | None                                # seconds since the last success ended
    waiting: tuple[tuple[str, float], ...] = ()      # (destination, seconds) of uploads waiting over max_age

    @property
    def too_old(self) -> bool:
        return self.age is not None and self.age > self.max_age

    def problems(self) -> list[str]:
        """What makes the job CRITICAL, one phrase each (none: OK)."""
        found = [f"last success older than {human_age(self.max_age)}"] if self.too_old else []
        if self.last_run is None:
            found.append("no run yet")
        elif self.last_run.status != Status.SUCCESS:
            error = self.last_run.error.message if self.last_run.error else "no error recorded"
            found.append(f"last run {self.last_run.status}: {error}")
        found += [f"upload to '{name}' waiting {human_age(seconds)} in the spool" for name, seconds in self.waiting]
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        if self.age is None:
            return "never succeeded"
        over = f" (over {human_age(self.max_age)})" if self.too_old else ""
        return f"last success {human_age(self.age)} ago{over}"

    def line(self) -> str:
        """`OK daily: last success 3h12m ago (archive 1.2 GiB, local+drive)`, or CRITICAL and every problem."""
        if not self.ok:
            return f"CRITICAL {self.job}: " + "; ".join([self.summary(), *self.problems()[self.too_old:]])
        stored = [d.name for d in self.last_success.destinations if d.status == DestinationStatus.SUCCESS]
        size = human_size(self.last_success.archive.size) if self.last_success.archive else "-"
        return f"OK {self.job}: {self.summary()} (archive {size}, {'+'.join(stored) or 'no destination'})"

    def to_dict(self) -> dict:
        success = self.last_success
        return {"job": self.job, "state": "OK" if self.ok else "CRITICAL", "line": self.line(),
                "max_age_s": self.max_age, "age_s": None if self.age is None else round(self.age, 1),
                "last_success": iso(finished_at(success)) if success else None,
                "last_run_status": self.last_run.status if self.last_run else None,
                "problems": self.problems()}


def judge(job: JobConfig, history: History, now: datetime | None = None,
          max_age: float | None = None) -> Freshness:
    """The Freshness of `job` (max_age: the one given, else the job's alert_after, else DEFAULT_MAX_AGE)."""
    now = now or utc_now()
    limit = max_age or job.alert_after or DEFAULT_MAX_AGE
    finished = [r for r in history.runs(job.name, limit=5) if r.status != Status.RUNNING]
    success = history.last_success(job.name)
    waiting = []
    for item in history.pending(job.name):
        created = parse_iso(item["meta"].get("created"))
        if created is not None and seconds_since(created, now) > limit:
            waiting.append((item["destination"], seconds_since(created, now)))
    return Freshness(job=job.name, max_age=limit, last_success=success, last_run=finished[0] if finished else None,
                     age=seconds_since(finished_at(success), now) if success else None, waiting=tuple(waiting))


def check_stale(config: Config, history: History, now: datetime | None = None) -> list[str]:
    """For each job with alert_after: open a stale episode (an error logged, on_failure and /fail with category
    'stale') when it has not succeeded for that long, at most once until a later success closes it (one within
    alert_after: a success in the very second of the alert too).
    The jobs whose episode opened now."""
    now = now or utc_now()
    opened = []
    for job in config.jobs.values():
        if job.alert_after is None:
            continue
        watched = history.watched_since(job.name, now)     # a job never successful counts from its first check
        success = history.last_success(job.name)
        since = finished_at(success) if success else watched
        episode = history.stale_since(job.name)
        if episode is not None and success is not None and _ends(episode, since, seconds_since(since, now), job):
            history.set_stale(job.name, None)
            log.info("job is fresh again", extra={"job": job.name, "last_success": iso(since)})
        elif episode is None and seconds_since(since, now) > job.alert_after:
            history.set_stale(job.name, now)
            opened.append(job.name)
            _alert(job, since if success else None, seconds_since(since, now))
    return opened


def _ends(episode: datetime, success: datetime, age: float, job: JobConfig) -> bool:
    """Whether the last success ends the open episode: it came after the alert, or it is within alert_after.
    The trail keeps whole seconds, so a success in the very second of the alert is known by its age."""
    return success > episode or age <= job.alert_after


def _alert(job: JobConfig, success: datetime | None, age: float) -> None:
    last = f"last success {iso(success)}" if success else "never succeeded"
    message = (f"job '{job.name}' has not succeeded for {human_age(age)}, over its alert_after of "
               f"{human_age(job.alert_after)} ({last})")
    log.error("job is stale", extra={"job": job.name, "age_s": round(age), "alert_after": job.alert_after,
                                     "last_success": iso(success), "error": message})
    notify.job_stale(job, message)
