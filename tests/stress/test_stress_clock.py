"""Clock: the wall clock jumps forward a day and back an hour under the real scheduler (APScheduler driven by a
test-controlled clock: its own `now` reads the test's clock, and the test wakes it after each jump), across
restarts (the catch-up logic with explicit `now`), and under retention: no scheduled run is lost, none runs
twice, and no backup is deleted early."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED

from backupd.config import load
from backupd.config.keep import KeepPolicy
from backupd.daemon.scheduler import Scheduler
from backupd.jobs import retention
from backupd.jobs.history import History
from tests.configs import job, write_config
from tests.waiting import wait_for

UTC = timezone.utc
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    """The wall clock as the scheduler sees it: set by the test, read through datetime.now."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        clock = self

        class Now(datetime):
            @classmethod
            def now(cls, tz=None):
                return clock.now.astimezone(tz) if tz else clock.now.replace(tzinfo=None)
        self.datetime = Now


class Daemonish:
    """The daemon's scheduling part on a test clock: catch-up at start, then the real APScheduler."""

    def __init__(self, config, history: History, clock: Clock) -> None:
        self.config, self.history, self.clock = config, history, clock
        self.ran: list[tuple[str, datetime]] = []         # (how, slot) of every run started
        self.settled: list[tuple[int, datetime]] = []
        self.submitted = 0
        self._lock = threading.Lock()
        self.scheduler: Scheduler | None = None

    def start(self) -> None:
        self.scheduler = Scheduler(lambda name, trigger: None, self.history)
        for name in self.scheduler.catch_up(self.config, now=self.clock.now):
            self.ran.append(("catch-up", self.clock.now))
        self.scheduler._scheduler.add_listener(self._event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED
                                               | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        self.scheduler.start(self.config)
        self._settle()

    def _event(self, event) -> None:
        with self._lock:
            if event.code == EVENT_JOB_SUBMITTED:
                self.submitted += 1
                return
            self.settled.append((event.code, event.scheduled_run_time))
            if event.code == EVENT_JOB_EXECUTED:
                self.ran.append(("schedule", event.scheduled_run_time))

    def set_clock(self, now: datetime) -> None:
        """The wall clock jumps (or moves) to `now`; the scheduler is woken and everything due is settled."""
        self.clock.now = now
        self.scheduler._scheduler.wakeup()
        self._settle()

    def _settle(self) -> None:
        def done():
            next_run = self.scheduler.next_run("main")
            with self._lock:
                return next_run is not None and next_run > self.clock.now and self.submitted == len(self.settled)
        wait_for(done, "the scheduler to process what is due", timeout=10, interval=0.01)

    def stop(self) -> None:
        self.scheduler.shutdown()

    def slots(self) -> list[datetime]:
        return [slot.astimezone(UTC) for how, slot in self.ran if how == "schedule"]


@pytest.fixture
def clocked(tmp_path, monkeypatch):
    """(a Daemonish factory, the clock): APScheduler's and the scheduler's datetime.now read the test clock."""
    clock = Clock(at("2030-01-01T02:00:00"))
    for module in ("apscheduler.schedulers.base", "apscheduler.executors.base", "backupd.daemon.scheduler"):
        monkeypatch.setattr(f"{module}.datetime", clock.datetime)
    config = load(write_config(tmp_path, jobs={"main": job(["files"], schedule="0 3 * * *")}))
    history = History(config.daemon.state_dir)
    made: list[Daemonish] = []

    def make() -> Daemonish:
        made.append(Daemonish(config, history, clock))
        made[-1].start()
        return made[-1]
    yield make, clock
    for daemon in made:
        daemon.stop()


def test_a_running_scheduler_loses_no_run_and_runs_none_twice_when_the_clock_jumps(clocked, figures):
    make, clock = clocked
    daemon = make()
    daemon.set_clock(at("2030-01-01T03:00:00"))              # the first slot, on time
    daemon.set_clock(at("2030-01-01T05:00:00") + DAY)        # forward a day: the 01-02 slot is 2 h late
    daemon.set_clock(clock.now - HOUR)                        # back an hour: 01-02 04:00
    daemon.set_clock(at("2030-01-02T03:00:00"))              # back across the slot already run
    daemon.set_clock(at("2030-01-03T03:00:00"))
    expected = [at("2030-01-01T03:00:00"), at("2030-01-02T03:00:00"), at("2030-01-03T03:00:00")]
    assert daemon.slots() == expected
    assert [code for code, _ in daemon.settled if code != EVENT_JOB_EXECUTED] == []
    figures(jumps="+1d,-1h,-1h", slots_run=len(daemon.slots()), twice=0, lost=0)


def test_a_restart_after_the_clock_jumped_forward_a_day_catches_up_once(clocked):
    make, clock = clocked
    make().stop()                                             # down at 01-01 02:00, before its slot
    clock.now = at("2030-01-02T04:00:00")                    # a day later, the 01-02 slot an hour ago
    daemon = make()
    assert [how for how, _ in daemon.ran] == ["catch-up"]
    daemon.set_clock(at("2030-01-03T03:00:00"))
    assert [how for how, _ in daemon.ran] == ["catch-up", "schedule"]


def test_a_restart_after_the_clock_went_back_an_hour_does_not_run_the_same_slot_again(clocked):
    make, clock = clocked
    first = make()
    first.set_clock(at("2030-01-01T03:00:00"))
    first.stop()
    clock.now = at("2030-01-01T02:20:00")                    # back an hour (and a bit), then a restart
    daemon = make()
    daemon.set_clock(at("2030-01-01T03:00:00"))
    daemon.set_clock(at("2030-01-02T03:00:00"))
    assert first.slots() + daemon.slots() == [at("2030-01-01T03:00:00"), at("2030-01-02T03:00:00")]


def test_retention_deletes_nothing_early_when_the_clock_jumps(figures):
    """Daily backups stamped by a clock that jumps forward a day, then back an hour: each prune keeps the
    3 newest by creation, and keeps whatever is dated after its `now`."""
    policy = KeepPolicy(last=3)
    true_now, offset = at("2030-01-01T03:00:00"), timedelta(0)
    created: list[retention.Backup] = []
    deleted_early = 0
    for day in range(12):
        offset += {4: DAY, 7: -HOUR}.get(day, timedelta(0))
        wall = true_now + offset
        created.append(retention.Backup(name=f"b{day:02d}", created=wall, ok=True))
        decisions = retention.decide(policy, created, wall, UTC)
        keep = {backup.name for backup in retention.kept(decisions)}
        newest = {backup.name for backup in created[-3:]}
        deleted_early += len(newest - keep) + len({b.name for b in created if b.created > wall} - keep)
        created = [backup for backup in created if backup.name in keep]
        true_now += DAY
    assert deleted_early == 0
    figures(prunes=12, jumps="+1d,-1h", deleted_early=deleted_early, kept=len(created))
