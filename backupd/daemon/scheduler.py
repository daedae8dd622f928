"""APScheduler wiring: one cron job per configured job, and catch-up of slots missed while the daemon was down.

APScheduler's memory job store forgets missed runs across restarts, so the last handled slot of each job
is recorded in the state database (like systemd timers' Persistent=true) and checked at start.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable, NamedTuple

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Config, JobConfig, cron
from ..jobs.result import Trigger

log = logging.getLogger("backupd.scheduler")
HOUSEKEEPING = "daemon:"     # id prefix of the daemon's own periodic jobs, which a reload keeps
ONE_SECOND = timedelta(seconds=1)
COUNT_LIMIT = 10_000         # missed slots counted one by one at start (a per-minute job down for a week)


def cron_trigger(job: JobConfig) -> BaseTrigger:
    """The job's crontab as an APScheduler trigger, built as the configuration check built it (config.cron)."""
    return cron.trigger(job.schedule, job.timezone)


TriggerFor = Callable[[JobConfig], BaseTrigger]   # a job's configuration -> when it fires


def verify_cron_trigger(job: JobConfig) -> BaseTrigger:
    """The job's verify_schedule as an APScheduler trigger."""
    return cron.trigger(job.verify_schedule, job.timezone)


class Missed(NamedTuple):
    """The slots that passed since the last handled one: the newest, and how many there were."""
    newest: datetime
    count: int
    exact: bool          # False when there were too many to count: `count` is then a lower bound


def missed_slots(job: JobConfig, last_slot: datetime | None, now: datetime,
                 trigger_for: TriggerFor = cron_trigger) -> Missed | None:
    """The slots after `last_slot` that are already past (None if there are none, or nothing was ever handled).

    Past COUNT_LIMIT slots the walk jumps to the start of the grace window, as only a slot within it can run.
    """
    if last_slot is None:
        return None
    trigger, cursor, newest, count, exact = trigger_for(job), last_slot, None, 0, True
    while (upcoming := trigger.get_next_fire_time(None, cursor + ONE_SECOND)) is not None and upcoming <= now:
        newest, count, cursor = upcoming, count + 1, upcoming
        if count == COUNT_LIMIT:
            cursor, exact = max(cursor, now - timedelta(seconds=job.misfire_grace) - ONE_SECOND), False
    return Missed(newest, count, exact) if newest is not None else None


def missed_slot(job: JobConfig, last_slot: datetime | None, now: datetime,
                trigger_for: TriggerFor = cron_trigger) -> datetime | None:
    """The newest slot after `last_slot` if it is already past, else None."""
    missed = missed_slots(job, last_slot, now, trigger_for)
    return missed.newest if missed else None


class Scheduler:
    """Fires `on_fire(job_name, trigger)`; the caller guarantees a job never runs twice at once.

    `trigger_for` turns a job into its APScheduler trigger: the job's crontab, unless the caller says otherwise.
    """

    def __init__(self, on_fire: Callable[[str, str], object], history, trigger_for: TriggerFor = cron_trigger,
                 on_verify: Callable[[str], object] | None = None,
                 verify_trigger_for: TriggerFor = verify_cron_trigger):
        self._on_fire = on_fire
        self._on_verify, self._verify_trigger_for = on_verify, verify_trigger_for
        self._history = history
        self._trigger_for = trigger_for
        self._scheduler = BackgroundScheduler(timezone=timezone.utc)

    def start(self, config: Config) -> None:
        self.apply(config)
        self._scheduler.start()

    def apply(self, config: Config, now: datetime | None = None) -> None:
        """(Re)schedule every job of `config` (and its verify_schedule); jobs no longer configured are removed."""
        now = now or datetime.now(timezone.utc)
        wanted = {f"job:{name}" for name in config.jobs} | {f"verify:{job.name}" for job in self._verified(config)}
        for existing in self._scheduler.get_jobs():
            if existing.id not in wanted and not existing.id.startswith(HOUSEKEEPING):
                existing.remove()
        for job in self._verified(config):
            self._scheduler.add_job(
                self._on_verify, self._verify_trigger_for(job), args=[job.name],
                id=f"verify:{job.name}", name=f"verification of job '{job.name}' ({job.verify_schedule})",
                replace_existing=True, misfire_grace_time=int(job.misfire_grace), coalesce=True, max_instances=1)
        for job in config.jobs.values():
            self._scheduler.add_job(
                self._fire, self._trigger_for(job), args=[job.name], id=f"job:{job.name}",
                name=f"backup job '{job.name}' ({job.schedule} {job.timezone})", replace_existing=True,
                misfire_grace_time=int(job.misfire_grace), coalesce=True, max_instances=1,
                **self._resume_after_last_slot(job, now))

    def _resume_after_last_slot(self, job: JobConfig, now: datetime) -> dict:
        """add_job's next_run_time when the wall clock is not past the last handled slot (it went back), else {}.

        APScheduler starts a schedule from the clock, which would run that slot again.
        """
        last = self._history.last_slot(job.name)
        if last is None or now > last:
            return {}
        upcoming = self._trigger_for(job).get_next_fire_time(None, last + ONE_SECOND)
        log.info("schedule resumes after the last handled slot: the wall clock is behind it",
                 extra={"job": job.name, "last_slot": last.isoformat(), "next_run": upcoming and upcoming.isoformat()})
        return {"next_run_time": upcoming} if upcoming is not None else {}

    def _verified(self, config: Config) -> list[JobConfig]:
        """The jobs with a verify_schedule (none when nobody takes verifications)."""
        return [job for job in config.jobs.values() if job.verify_schedule and self._on_verify is not None]

    def every(self, name: str, seconds: float, action: Callable[[], object]) -> None:
        """Call `action` every `seconds` in the scheduler's thread pool (the daemon's own housekeeping)."""
        self._scheduler.add_job(action, IntervalTrigger(seconds=seconds), id=HOUSEKEEPING + name, name=name,
                                replace_existing=True, coalesce=True, max_instances=1)

    def next_verify(self, job_name: str) -> datetime | None:
        return getattr(self._scheduler.get_job(f"verify:{job_name}"), "next_run_time", None)

    def _fire(self, job_name: str) -> None:
        """A scheduled slot is due: record it as handled and run, unless the clock says it was handled already."""
        now = datetime.now(timezone.utc)
        last = self._history.last_slot(job_name)
        if last is not None and now <= last:      # a fire is never after its slot: that slot is not newer
            log.warning("scheduled run skipped: the wall clock is behind the last handled slot",
                        extra={"job": job_name, "last_slot": last.isoformat(), "now": now.isoformat()})
            return
        self._history.set_last_slot(job_name, now)
        self._on_fire(job_name, Trigger.SCHEDULE)

    def catch_up(self, config: Config, now: datetime | None = None) -> list[str]:
        """Jobs whose newest slot passed while the daemon was down (within their grace): run each once.

        Older missed slots are coalesced into that one run (systemd's Persistent=true) and logged as skipped.
        """
        now = now or datetime.now(timezone.utc)
        due = []
        for job in config.jobs.values():
            last = self._history.last_slot(job.name)
            missed = missed_slots(job, last, now, self._trigger_for)
            self._history.set_last_slot(job.name, now)      # never moves a newer recorded slot back
            if last is not None and now < last:
                log.warning("the wall clock is behind the last handled slot", extra={
                    "job": job.name, "last_slot": last.isoformat(), "now": now.isoformat()})
            if missed is not None and self._catches_up(job, missed, now):
                due.append(job.name)
        return due

    @staticmethod
    def _catches_up(job: JobConfig, missed: Missed, now: datetime) -> bool:
        """Whether the newest missed slot runs now (catch_up on, within misfire_grace); logged either way."""
        late = (now - missed.newest).total_seconds()
        runs = job.catch_up and late <= job.misfire_grace
        skipped = missed.count - 1 if runs else missed.count
        extra = {"job": job.name, "slot": missed.newest.isoformat(), "late_seconds": round(late),
                 "skipped_slots": skipped, **({} if missed.exact else {"skipped_slots_at_least": True})}
        if runs:
            log.info("catching up a missed run", extra=extra)
        else:
            log.warning("missed run not caught up", extra={
                **extra, "reason": "catch_up is off" if not job.catch_up else "later than misfire_grace"})
        return runs

    def next_run(self, job_name: str) -> datetime | None:
        job = self._scheduler.get_job(f"job:{job_name}")
        return getattr(job, "next_run_time", None)   # unset until the scheduler has started

    def healthy(self) -> bool:
        thread = getattr(self._scheduler, "_thread", None)
        return self._scheduler.running and thread is not None and thread.is_alive()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
