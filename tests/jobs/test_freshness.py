"""Freshness and stale alerts on a real audit trail, with the clock the test passes in: `backupctl check`'s
lines, and on_failure with category 'stale' exactly once per episode."""
from __future__ import annotations

from datetime import timedelta

from backupd import config as config_module
from backupd.jobs import notify
from backupd.jobs.freshness import check_stale, judge
from backupd.jobs.history import History
from backupd.jobs.result import Status
from backupd.util.clock import utc_now
from tests.configs import job, write_config
from tests.jobs.records import saved_run

HOUR = timedelta(hours=1)


def setup(tmp_path, **job_keys):
    alerts = tmp_path / "alerts.txt"
    hook = ["sh", "-c", f'echo "$BACKUPD_JOB $BACKUPD_ERROR_CATEGORY" >> {alerts}']
    jobs = {"daily": job(["files"], on_failure=hook, **job_keys), "plain": job(["files"])}
    config = config_module.load(write_config(tmp_path, jobs=jobs))
    return config, History(config.daemon.state_dir), alerts


def fired(alerts) -> list[str]:
    assert notify.drain(30)
    return alerts.read_text().splitlines() if alerts.exists() else []


def test_stale_fires_once_per_episode_and_again_only_after_a_success(tmp_path):
    config, history, alerts = setup(tmp_path, alert_after="26h")
    saved_run(history, "daily", ago=30 * HOUR)
    saved_run(history, "plain", ago=300 * HOUR)                      # no alert_after: never stale
    now = utc_now()
    assert check_stale(config, history, now) == ["daily"]
    assert check_stale(config, history, now + HOUR) == []
    assert check_stale(config, History(config.daemon.state_dir), now + 2 * HOUR) == []   # a restart remembers
    assert fired(alerts) == ["daily stale"]
    saved_run(history, "daily", ago=-3 * HOUR)                       # a success after the episode began
    assert check_stale(config, history, now + 4 * HOUR) == []        # closes it
    assert check_stale(config, history, now + 30 * HOUR) == ["daily"]   # that success is 27 h old by then
    assert fired(alerts) == ["daily stale", "daily stale"]


def test_a_success_in_the_very_second_of_the_alert_ends_the_episode(tmp_path):
    config, history, alerts = setup(tmp_path, alert_after="26h")
    saved_run(history, "daily", ago=30 * HOUR)
    now = utc_now().replace(microsecond=999999)                      # the trail keeps whole seconds of both
    assert check_stale(config, history, now) == ["daily"]
    success = saved_run(history, "daily")
    success.started, success.ended = now - HOUR, history.stale_since("daily")   # ended in the alert's second
    history.save(success)
    assert check_stale(config, history, now) == []
    assert history.stale_since("daily") is None
    assert fired(alerts) == ["daily stale"]


def test_a_job_that_never_succeeded_goes_stale_counted_from_its_first_check(tmp_path):
    config, history, alerts = setup(tmp_path, alert_after="2h")
    saved_run(history, "daily", Status.FAILED, ago=HOUR)
    now = utc_now()
    assert check_stale(config, history, now) == []
    assert check_stale(config, history, now + 3 * HOUR) == ["daily"]
    assert history.stale_since("daily") is not None


def test_check_lines_for_fresh_failed_never_run_and_too_old(tmp_path):
    config, history, _ = setup(tmp_path)
    saved_run(history, "daily", ago=timedelta(hours=3, minutes=12), size=1288490189, destinations=("local", "drive"))
    daily = judge(config.jobs["daily"], history)
    assert daily.ok and daily.line() == "OK daily: last success 3h12m ago (archive 1.2 GiB, local+drive)"
    assert judge(config.jobs["plain"], history).line() == "CRITICAL plain: never succeeded; no run yet"
    saved_run(history, "plain", ago=72 * HOUR)
    saved_run(history, "plain", Status.FAILED, ago=HOUR, destinations=("drive",))
    assert judge(config.jobs["plain"], history).line() == (
        "CRITICAL plain: last success 3d ago (over 1d2h); last run failed: destination 'drive': quota exceeded")
    assert judge(config.jobs["daily"], history, max_age=3600.0).line().startswith(
        "CRITICAL daily: last success 3h12m ago (over 1h)")


def test_an_upload_waiting_longer_than_the_max_age_is_critical(tmp_path):
    config, history, _ = setup(tmp_path)
    saved_run(history, "daily", ago=HOUR)
    created = (utc_now() - 30 * HOUR).isoformat()
    history.add_pending("daily-old.tar.zst", "drive", "daily", "0" * 12, {"created": created})
    assert judge(config.jobs["daily"], history).problems() == ["upload to 'drive' waiting 1d6h in the spool"]
    assert judge(config.jobs["daily"], history, max_age=40 * 3600.0).ok
