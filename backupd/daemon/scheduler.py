"""APScheduler wiring: one cron job per configured job, and catch-up of slots missed while the daemon was down.

APScheduler's memory job store forgets missed runs across restarts, so the last handled slot of each job
is recorded in the state database (like systemd timers' Persistent=true) and checked at start.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Config, JobConfig, cron
from ..jobs.result import Trigger

log = logging.getLogger("backupd.scheduler")
HOUSEKEEPING = "daemon:"     # id prefix of the daemon's own periodic jobs, which a reload keeps


def cron_trigger(job: JobConfig) -> BaseTrigger:
    """The job's crontab as an APScheduler trigger, built as the configuration check built it (config.cron)."""
    return cron.trigger(job.schedule, job.timezone)


TriggerFor = Callable[[JobConfig], BaseTrigger]   # a job's configuration -> when it fires


def verify_cron_trigger(job: JobConfig) -> BaseTrigger:
    """The job's verify_schedule as an APScheduler trigger."""
    return cron.trigger(job.verify_schedule, job.timezone)


def missed_slot(job: JobConfig, last_slot: datetime | None, now: datetime,
                trigger_for: TriggerFor = cron_trigger) -> datetime | None:
    """The first slot after `last_slot` if it is already past, else None."""
    if last_slot is None:
        return None
    upcoming = trigger_for(job).get_next_fire_time(None, last_slot + timedelta(seconds=1))
    return upcoming if upcoming is not None and upcoming <= now else None


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

    def apply(self, config: Config) -> None:
        """(Re)schedule every job of `config` (and its verify_schedule); jobs no longer configured are removed."""
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
                misfire_grace_time=int(job.misfire_grace), coalesce=True, max_instances=1)

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
        self._history.set_last_slot(job_name, datetime.now(timezone.utc))
        self._on_fire(job_name, Trigger.SCHEDULE)

    def catch_up(self, config: Config, now: datetime | None = None) -> list[str]:
        """Jobs whose slot passed while the daemon was down (within their grace): run each once."""
        now = now or datetime.now(timezone.utc)
        due = []
        for job in config.jobs.values():
            slot = missed_slot(job, self._history.last_slot(job.name), now, self._trigger_for)
            self._history.set_last_slot(job.name, now)
            if slot is None:
                continue
            late = (now - slot).total_seconds()
            if job.catch_up and late <= job.misfire_grace:
                log.info("catching up a missed run", extra={"job": job.name, "slot": slot.isoformat(),
                                                            "late_seconds": round(late)})
                due.append(job.name)
            else:
                log.warning("missed run not caught up", extra={
                    "job": job.name, "slot": slot.isoformat(), "late_seconds": round(late),
                    "reason": "catch_up is off" if not job.catch_up else "later than misfire_grace"})
        return due

    def next_run(self, job_name: str) -> datetime | None:
        job = self._scheduler.get_job(f"job:{job_name}")
        return getattr(job, "next_run_time", None)   # unset until the scheduler has started

    def healthy(self) -> bool:
        thread = getattr(self._scheduler, "_thread", None)
        return self._scheduler.running and thread is not None and thread.is_alive()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
