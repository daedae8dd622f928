"""Schedules follow crontab(5): when both day fields are restricted, a day matches if either does."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backupd.config import JobConfig
from backupd.config.cron import schedule
from backupd.daemon.scheduler import Scheduler, cron_trigger, missed_slot
from backupd.jobs.history import History

UTC = timezone.utc


def job(expression: str, tz: str = "UTC") -> JobConfig:
    return JobConfig(name="daily", schedule=schedule(expression), timezone=tz, sources=("a",), destinations=("b",))


def fires(expression: str, start: datetime, count: int = 1, tz: str = "UTC") -> list[datetime]:
    trigger, out, previous = cron_trigger(job(expression, tz)), [], None
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, start if previous is None else previous)
        out.append(previous.astimezone(UTC))
    return out


def at(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("expression, start, expected", [
    ("0 3 1 * mon", at(2026, 12, 1), [at(2026, 12, 1, 3)]),          # the 1st (a Tuesday)
    ("0 3 1 * mon", at(2026, 12, 1, 4), [at(2026, 12, 7, 3)]),       # a Monday; "the 1st AND a Monday": 2027-02-01
    ("0 3 1 * mon", at(2026, 12, 20), [at(2026, 12, 21, 3), at(2026, 12, 28, 3), at(2027, 1, 1, 3),
                                        at(2027, 1, 4, 3)]),
    ("0 3 13 * fri", at(2026, 11, 1), [at(2026, 11, 6, 3), at(2026, 11, 13, 3), at(2026, 11, 20, 3)]),
    ("0 3 1 * *", at(2026, 12, 1, 4), [at(2027, 1, 1, 3)]),           # only day-of-month restricted
    ("0 3 * * mon", at(2026, 12, 1), [at(2026, 12, 7, 3)]),           # only day-of-week restricted
    ("0 3 */2 * mon", at(2026, 12, 8), [at(2026, 12, 21, 3)]),        # '*/2' starts with '*': both must match
    ("0 0 31 2 mon", at(2026, 12, 1), [at(2027, 2, 1, 0)]),           # no 31 February, but Mondays in February
])
def test_next_fire_times(expression, start, expected):
    assert fires(expression, start, len(expected)) == expected


def test_either_day_in_the_job_time_zone():
    assert fires("30 1 1 * sat", at(2026, 11, 30, 12), 2, tz="Europe/Berlin") == [
        at(2026, 12, 1, 0, 30), at(2026, 12, 5, 0, 30)]


def test_catch_up_finds_the_slot_either_day_gives():
    daily = job("0 3 1 * mon")
    assert missed_slot(daily, at(2026, 12, 1, 3), at(2026, 12, 8, 12)) == at(2026, 12, 7, 3)
    assert missed_slot(daily, at(2026, 12, 7, 3), at(2026, 12, 8, 12)) is None


def test_the_scheduler_runs_an_either_day_schedule(tmp_path):
    from backupd.config.model import Config, DaemonConfig
    daily = job("0 3 1 * mon")
    scheduler = Scheduler(lambda name, trigger: None, History(tmp_path))
    scheduler.start(Config(path=None, daemon=DaemonConfig(), jobs={"daily": daily}, sources={}, destinations={}))
    try:
        upcoming = scheduler.next_run("daily")
        assert upcoming is not None and (upcoming.day == 1 or upcoming.weekday() == 0)
        assert upcoming - datetime.now(UTC) <= timedelta(days=7)
    finally:
        scheduler.shutdown()
