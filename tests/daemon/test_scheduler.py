"""Cron semantics and catch-up decisions, against APScheduler's real CronTrigger."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from backupd.config.model import JobConfig
from backupd.config.fields import crontab
from backupd.daemon.scheduler import COUNT_LIMIT, Scheduler, cron_trigger, missed_slot, missed_slots
from backupd.jobs.history import History

UTC = timezone.utc


def job(schedule="0 3 * * *", **kwargs) -> JobConfig:
    return JobConfig(name="daily", schedule=crontab(schedule), sources=("a",), destinations=("b",), **kwargs)


def test_sunday_is_zero_as_in_crontab():
    fire = cron_trigger(job("0 3 * * 0")).get_next_fire_time(None, datetime(2026, 11, 26, tzinfo=UTC))
    assert fire == datetime(2026, 11, 29, 3, 0, tzinfo=UTC) and fire.weekday() == 6


def test_timezone_is_honoured():
    berlin = cron_trigger(job("0 3 * * *", timezone="Europe/Berlin"))
    fire = berlin.get_next_fire_time(None, datetime(2026, 11, 26, tzinfo=UTC))
    assert fire.astimezone(UTC) == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def test_missed_slot():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert missed_slot(job(), None, now) is None                                   # first start ever
    assert missed_slot(job(), now - timedelta(hours=2), now) is None               # nothing in between
    assert missed_slot(job(), now - timedelta(days=1), now) == datetime(2026, 11, 26, 3, tzinfo=UTC)


class Recorder:
    def __init__(self):
        self.fired = []

    def __call__(self, name, trigger):
        self.fired.append((name, trigger))


def config_with(*jobs):
    from backupd.config.model import Config, DaemonConfig
    return Config(path=None, daemon=DaemonConfig(), jobs={j.name: j for j in jobs}, sources={}, destinations={})


def test_catch_up_once_within_grace_and_not_beyond(tmp_path):
    history = History(tmp_path)
    scheduler = Scheduler(Recorder(), history)
    now = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    config = config_with(job(misfire_grace=6 * 3600))
    assert scheduler.catch_up(config, now) == []                    # first start: baseline only
    assert scheduler.catch_up(config, now + timedelta(days=1)) == ["daily"]   # 03:00 missed by 2 h
    assert scheduler.catch_up(config, now + timedelta(days=1, minutes=1)) == []   # handled: once
    late = config_with(job(misfire_grace=3600))
    assert scheduler.catch_up(late, now + timedelta(days=2)) == []  # missed by 2 h, grace 1 h
    off = config_with(job(catch_up=False))
    assert scheduler.catch_up(off, now + timedelta(days=3)) == []


def test_jobs_are_scheduled_with_ids_and_next_run(tmp_path):
    scheduler = Scheduler(Recorder(), History(tmp_path))
    scheduler.apply(config_with(job()))
    assert scheduler.next_run("daily") is None          # not known before the scheduler runs
    scheduler.start(config_with(job()))
    try:
        assert scheduler.healthy()
        assert scheduler.next_run("daily").hour == 3
        scheduler.apply(config_with(job(schedule="30 4 * * *")))
        assert (scheduler.next_run("daily").hour, scheduler.next_run("daily").minute) == (4, 30)
        scheduler.apply(config_with())
        assert scheduler.next_run("daily") is None
    finally:
        scheduler.shutdown()
    assert not scheduler.healthy()


def test_a_verify_schedule_is_its_own_scheduled_job_and_goes_with_the_setting(tmp_path):
    verified = []
    scheduler = Scheduler(Recorder(), History(tmp_path), on_verify=verified.append)
    scheduler.start(config_with(job(verify_schedule=crontab("30 4 * * sun"))))
    try:
        upcoming = scheduler.next_verify("daily")
        assert (upcoming.weekday(), upcoming.hour, upcoming.minute) == (6, 4, 30)
        assert scheduler.next_run("daily").hour == 3            # the backup keeps its own schedule
        scheduler._scheduler.get_job("verify:daily").func("daily")
        assert verified == ["daily"]
        scheduler.apply(config_with(job()))                     # verify_schedule removed: default off
        assert scheduler.next_verify("daily") is None and scheduler.next_run("daily") is not None
    finally:
        scheduler.shutdown()
    without = Scheduler(Recorder(), History(tmp_path / "other"))     # nobody takes verifications: none scheduled
    without.apply(config_with(job(verify_schedule=crontab("30 4 * * *"))))
    assert without._scheduler.get_job("verify:daily") is None


def test_catch_up_runs_the_newest_missed_slot_and_logs_the_older_ones_skipped(tmp_path, caplog):
    scheduler = Scheduler(Recorder(), History(tmp_path))
    config = config_with(job(misfire_grace=2 * 3600))
    scheduler.catch_up(config, datetime(2026, 11, 24, 2, 0, tzinfo=UTC))           # baseline, before 03:00
    caplog.set_level("INFO", logger="backupd.scheduler")
    now = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)             # slots 24th, 25th (25 h late), 26th (1 h late)
    assert scheduler.catch_up(config, now) == ["daily"]
    [record] = [r for r in caplog.records if r.message == "catching up a missed run"]
    assert (record.slot, record.skipped_slots) == ("2026-11-26T03:00:00+00:00", 2)
    assert scheduler.catch_up(config, now + timedelta(minutes=1)) == []              # coalesced: once


def test_missed_slots_counts_them_and_stops_counting_past_the_limit():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert missed_slots(job(), now - timedelta(days=3), now) == (datetime(2026, 11, 26, 3, tzinfo=UTC), 3, True)
    assert missed_slots(job(), now - timedelta(hours=2), now) is None
    minutely = missed_slots(job("* * * * *"), now - timedelta(minutes=COUNT_LIMIT + 500), now)
    assert minutely.newest == now and not minutely.exact and minutely.count >= COUNT_LIMIT


def test_a_clock_behind_the_last_slot_neither_moves_it_back_nor_reruns_the_slot(tmp_path):
    history = History(tmp_path)
    scheduler = Scheduler(Recorder(), history)
    ran = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    history.set_last_slot("daily", ran)
    assert scheduler.catch_up(config_with(job()), ran - timedelta(minutes=40)) == []    # clock back 40 min
    history.set_last_slot("daily", ran - timedelta(hours=1))
    assert history.last_slot("daily") == ran
    scheduler.apply(config_with(job()), now=ran - timedelta(minutes=40))
    assert scheduler.next_run("daily") == ran + timedelta(days=1)        # not today's 03:00 again
    on_time = Scheduler(Recorder(), history)
    on_time.apply(config_with(job()), now=ran + timedelta(minutes=1))    # clock past it: APScheduler's own
    assert on_time.next_run("daily") is None                             # (set when it starts)


def test_a_fire_while_the_clock_is_behind_the_last_slot_is_skipped(tmp_path):
    history, fired = History(tmp_path), Recorder()
    scheduler = Scheduler(fired, history)
    ahead = datetime.now(UTC) + timedelta(hours=1)
    history.set_last_slot("daily", ahead)
    scheduler._fire("daily")
    assert fired.fired == [] and history.last_slot("daily") == ahead.replace(microsecond=0)
    moved = History(tmp_path / "moved")
    moved.set_last_slot("daily", ahead - timedelta(hours=2))         # the slot handled two hours ago
    Scheduler(fired, moved)._fire("daily")
    assert fired.fired == [("daily", "schedule")] and moved.last_slot("daily") > ahead - timedelta(hours=2)
