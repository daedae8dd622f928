"""Schedules: a normalised crontab expression as the APScheduler trigger the daemon runs.

Both the checker and the scheduler build triggers here, so whatever `--check-config` accepts the daemon can
schedule. Days follow crontab(5): when day-of-month and day-of-week are both restricted (neither starts with
'*'), a day matches if EITHER matches ('0 3 1 * mon': the 1st and every Monday); APScheduler's CronTrigger
requires both, so that case is an OrTrigger of two CronTriggers, whose next fire time is the earlier one.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from .fields import FieldError, crontab, shown


def trigger(schedule: str, tz: str = "UTC") -> BaseTrigger:
    """The trigger for `schedule` (as fields.crontab returns it: weekdays by name) in time zone `tz`."""
    minute, hour, day, month, day_of_week = schedule.split()

    def cron(day: str, day_of_week: str) -> CronTrigger:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week,
                           timezone=ZoneInfo(tz))

    if day.startswith("*") or day_of_week.startswith("*"):
        return cron(day, day_of_week)
    return OrTrigger([cron(day, "*"), cron("*", day_of_week)])


def schedule(value) -> str:
    """Key parser: a crontab expression the scheduler accepts and that fires at least once more."""
    normalised = crontab(value)
    try:
        built = trigger(normalised)
    except ValueError as exc:
        raise FieldError(f"the scheduler refuses {shown(value)}: {exc}") from None
    if built.get_next_fire_time(None, datetime.now(timezone.utc)) is None:
        raise FieldError(f"{shown(value)} never fires (no such date)")
    return normalised
