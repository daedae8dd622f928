"""The keep policy: each rule, the built-in safety rules, and a year of daily runs pruned after every run."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from backupd.jobs.retention import Backup, KeepPolicy, decide, format_plan, kept

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(text: str, tz=UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def backups(*times: str, failed: tuple[str, ...] = ()) -> list[Backup]:
    """One backup per time, named after it ('b-<time>'); the times in `failed` did not verify."""
    return [Backup(f"b-{text}", at(text), ok=text not in failed) for text in times]


def rules(policy, candidates, now=NOW, tz=UTC) -> dict[str, tuple[str, ...]]:
    """Name -> the rules that keep it (empty: removed)."""
    return {d.backup.name: d.rules for d in decide(policy, candidates, now, tz)}


def kept_names(policy, candidates, now=NOW, tz=UTC) -> list[str]:
    return [b.name for b in kept(decide(policy, candidates, now, tz))]


def test_describe_reads_like_the_policy():
    policy = KeepPolicy(last=3, daily=7, weekly=4, monthly=12, within=2 * 86400)
    assert policy.describe() == "keep last 3, 7 daily, 4 weekly, 12 monthly, everything within 2d"
    assert KeepPolicy(hourly=24, yearly=2, within=5400).describe() == "keep 24 hourly, 2 yearly, everything within 1h30m"
    assert KeepPolicy().describe() == "keep everything (no keep policy)"
    assert KeepPolicy().empty and not KeepPolicy(yearly=1).empty


@pytest.mark.parametrize("bad, message", [
    ({"last": 0}, "keep.last must be a whole number of at least 1, got 0"),
    ({"daily": -2}, "keep.daily must be a whole number of at least 1, got -2"),
    ({"weekly": True}, "keep.weekly must be a whole number of at least 1, got True"),
    ({"monthly": 1.5}, "keep.monthly must be a whole number of at least 1, got 1.5"),
    ({"within": 0}, "keep.within must be a positive number of seconds, got 0"),
    ({"within": "7d"}, "keep.within must be a positive number of seconds, got '7d'"),
])
def test_policy_rejects_values_that_mean_nothing(bad, message):
    with pytest.raises(ValueError) as raised:
        KeepPolicy(**bad)
    assert str(raised.value) == message


def test_last_keeps_the_newest_n():
    history = backups("2026-11-28T03:00", "2026-11-29T03:00", "2026-11-30T03:00", "2026-12-01T03:00")
    assert rules(KeepPolicy(last=2), history) == {
        "b-2026-12-01T03:00": ("newest successful", "last 1"), "b-2026-11-30T03:00": ("last 2",),
        "b-2026-11-29T03:00": (), "b-2026-11-28T03:00": ()}


def test_hourly_and_daily_keep_the_newest_of_each_period():
    history = backups("2026-11-30T09:10", "2026-11-30T09:50", "2026-11-30T10:05", "2026-12-01T08:00",
                      "2026-12-01T08:30")
    assert rules(KeepPolicy(hourly=2), history) == {
        "b-2026-12-01T08:30": ("newest successful", "hourly 2026-12-01 08:00"), "b-2026-12-01T08:00": (),
        "b-2026-11-30T10:05": ("hourly 2026-11-30 10:00",), "b-2026-11-30T09:50": (), "b-2026-11-30T09:10": ()}
    assert kept_names(KeepPolicy(daily=5), history) == ["b-2026-12-01T08:30", "b-2026-11-30T10:05"]


def test_weekly_uses_iso_weeks_across_the_new_year():
    # 2026 has 53 ISO weeks: 2026-12-28 (Monday) .. 2027-01-03 (Sunday) is 2026-W53.
    history = backups("2026-12-27T12:00", "2026-12-28T12:00", "2027-01-03T12:00", "2027-01-04T12:00")
    assert rules(KeepPolicy(weekly=3), history, now=at("2027-01-05T00:00")) == {
        "b-2027-01-04T12:00": ("newest successful", "weekly 2027-W01"), "b-2027-01-03T12:00": ("weekly 2026-W53",),
        "b-2026-12-28T12:00": (), "b-2026-12-27T12:00": ("weekly 2026-W52",)}


def test_monthly_and_yearly_labels():
    history = backups("2024-12-31T23:00", "2025-06-30T10:00", "2025-12-31T10:00", "2026-11-30T10:00")
    assert rules(KeepPolicy(monthly=2, yearly=2), history) == {
        "b-2026-11-30T10:00": ("newest successful", "monthly 2026-11", "yearly 2026"),
        "b-2025-12-31T10:00": ("monthly 2025-12", "yearly 2025"), "b-2025-06-30T10:00": (), "b-2024-12-31T23:00": ()}


def test_within_keeps_everything_strictly_newer_than_now_minus_the_duration():
    history = backups("2026-11-29T12:00", "2026-11-29T12:01", "2026-11-30T18:00")
    assert rules(KeepPolicy(within=2 * 86400), history) == {
        "b-2026-11-30T18:00": ("newest successful", "within 2d"), "b-2026-11-29T12:01": ("within 2d",),
        "b-2026-11-29T12:00": ()}


def test_periods_are_local_to_the_job_time_zone():
    # 23:30 and 04:30 UTC fall on one day in New York (18:30 and 23:30 on the 29th), on two in UTC.
    history = backups("2026-11-29T23:30", "2026-11-30T04:30")
    assert kept_names(KeepPolicy(daily=2), history) == ["b-2026-11-30T04:30", "b-2026-11-29T23:30"]
    new_york = ZoneInfo("America/New_York")
    assert rules(KeepPolicy(daily=2), history, tz=new_york) == {
        "b-2026-11-30T04:30": ("newest successful", "daily 2026-11-29"), "b-2026-11-29T23:30": ()}


def test_the_repeated_hour_of_a_dst_change_is_one_hour_period():
    # New York falls back at 06:00 UTC on 2026-11-01: 05:30 and 06:30 UTC are both 01:30 local.
    history = backups("2026-11-01T04:30", "2026-11-01T05:30", "2026-11-01T06:30")
    assert rules(KeepPolicy(hourly=2), history, tz=ZoneInfo("America/New_York")) == {
        "b-2026-11-01T06:30": ("newest successful", "hourly 2026-11-01 01:00"), "b-2026-11-01T05:30": (),
        "b-2026-11-01T04:30": ("hourly 2026-11-01 00:00",)}


def test_rules_add_up_and_each_is_named():
    history = backups("2026-10-15T03:00", "2026-11-29T03:00", "2026-11-30T03:00", "2026-12-01T03:00")
    assert rules(KeepPolicy(last=1, daily=2, monthly=3), history) == {
        "b-2026-12-01T03:00": ("newest successful", "last 1", "daily 2026-12-01", "monthly 2026-12"),
        "b-2026-11-30T03:00": ("daily 2026-11-30", "monthly 2026-11"), "b-2026-11-29T03:00": (),
        "b-2026-10-15T03:00": ("monthly 2026-10",)}


def test_an_empty_policy_keeps_everything_failed_ones_too():
    history = backups("2026-11-29T03:00", "2026-11-30T03:00", failed=("2026-11-30T03:00",))
    assert set(rules(KeepPolicy(), history).values()) == {("no keep policy",)}


def test_the_newest_successful_backup_is_kept_whatever_the_policy():
    history = backups("2026-01-01T03:00", "2026-11-30T03:00", "2026-12-01T03:00", failed=("2026-12-01T03:00",))
    # The failed newest one takes no 'last' slot; the good one before it stays even when no rule reaches it.
    assert rules(KeepPolicy(last=1), history) == {
        "b-2026-12-01T03:00": (), "b-2026-11-30T03:00": ("newest successful", "last 1"), "b-2026-01-01T03:00": ()}
    assert kept_names(KeepPolicy(within=60), history) == ["b-2026-11-30T03:00"]


def test_a_failed_backup_takes_no_slot_from_a_good_one():
    history = backups("2026-11-30T01:00", "2026-11-30T02:00", "2026-12-01T01:00", "2026-12-01T02:00",
                      failed=("2026-12-01T02:00", "2026-11-30T02:00"))
    decisions = decide(KeepPolicy(daily=2), history, NOW, UTC)
    assert [(d.backup.name, d.rules) for d in decisions] == [
        ("b-2026-12-01T02:00", ()), ("b-2026-12-01T01:00", ("newest successful", "daily 2026-12-01")),
        ("b-2026-11-30T02:00", ()), ("b-2026-11-30T01:00", ("daily 2026-11-30",))]
    assert decisions[0].reason == "verification failed, counts toward no rule"


def test_backups_dated_after_now_are_kept_and_count_toward_no_rule():
    # The clock jumped back a day: what looks newer than now is never deleted, nor does it take 'last 1'.
    history = backups("2026-11-30T11:00", "2026-12-01T11:00", "2026-12-02T11:00", "2026-12-03T11:00",
                      failed=("2026-12-03T11:00",))
    assert rules(KeepPolicy(last=1), history) == {
        "b-2026-12-03T11:00": ("dated after now",), "b-2026-12-02T11:00": ("dated after now",),
        "b-2026-12-01T11:00": ("newest successful", "last 1"), "b-2026-11-30T11:00": ()}


def test_equal_times_are_ordered_by_name_whatever_the_input_order():
    same = at("2026-11-30T03:00")
    history = [Backup("b", same), Backup("c", same), Backup("a", same)]
    for order in (history, history[::-1]):
        assert [(d.backup.name, d.rules) for d in decide(KeepPolicy(daily=1), order, NOW, UTC)] == [
            ("c", ("newest successful", "daily 2026-11-30")), ("b", ()), ("a", ())]


@pytest.mark.parametrize("candidates, now, message", [
    ([Backup("x", datetime(2026, 1, 1))], NOW, "retention: backup 'x' has a creation time without a time zone"),
    ([Backup("x", NOW), Backup("x", NOW - timedelta(1))], NOW, "retention: backup name 'x' appears twice"),
    ([], datetime(2026, 1, 1), "retention: 'now' must be an aware datetime, got 2026-01-01T00:00:00"),
])
def test_bad_input_decides_nothing(candidates, now, message):
    with pytest.raises(ValueError, match=message):
        decide(KeepPolicy(last=1), candidates, now, UTC)


def test_the_plan_lists_every_backup_newest_first_with_why():
    history = backups("2026-11-29T03:00", "2026-11-30T03:00", "2026-12-01T03:00", failed=("2026-12-01T03:00",))
    plan = format_plan(reversed(decide(KeepPolicy(daily=1, weekly=1), history, NOW, ZoneInfo("Europe/Berlin"))))
    assert plan == [
        "remove  2026-12-01 04:00:00 CET  b-2026-12-01T03:00  (verification failed, counts toward no rule)",
        "keep    2026-11-30 04:00:00 CET  b-2026-11-30T03:00  (newest successful, daily 2026-11-30, weekly 2026-W49)",
        "remove  2026-11-29 04:00:00 CET  b-2026-11-29T03:00  (no rule keeps it)"]


def archive_name(day: datetime) -> str:
    return f"daily-web1-{day:%Y%m%dT%H%M%SZ}.tar.zst"


def test_a_year_of_daily_runs_pruned_after_each_run():
    policy = KeepPolicy(daily=7, weekly=4, monthly=12)
    first = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    every_run = [Backup(archive_name(first + timedelta(days=n)), first + timedelta(days=n)) for n in range(365)]
    held: list[Backup] = []
    for backup in every_run:  # each run stores its archive, then prunes what the destination holds
        now = backup.created + timedelta(minutes=5)
        decisions = decide(policy, held + [backup], now, UTC)
        held = kept(decisions)
    # The last run is 2026-12-31 (a Thursday; 2026 has 53 ISO weeks).
    daily = [f"2026-12-{day}" for day in range(31, 24, -1)]               # 7: Dec 31 .. Dec 25
    weekly = ["2026-12-31", "2026-12-27", "2026-12-20", "2026-12-13"]      # W53, W52, W51, W50
    monthly = ["2026-12-31", "2026-11-30", "2026-10-31", "2026-09-30", "2026-08-31", "2026-07-31",
               "2026-06-30", "2026-05-31", "2026-04-30", "2026-03-31", "2026-02-28", "2026-01-31"]
    expected = sorted(set(daily + weekly + monthly), reverse=True)
    assert len(expected) == 7 + 4 + 12 - 3  # Dec 31 is daily, weekly and monthly; Dec 27 daily and weekly
    assert [b.name for b in held] == [archive_name(datetime.fromisoformat(f"{day}T03:00+00:00")) for day in expected]
    # Pruning after every run leaves what one prune of the whole, never pruned year leaves.
    whole_year = decide(policy, every_run, now, UTC)
    assert kept(whole_year) == held
    whole_plan = format_plan(whole_year)
    assert len(whole_plan) == 365 and sum(line.startswith("remove") for line in whole_plan) == 365 - 20
    plan = format_plan(decisions)
    print("", "prune --dry-run after the last run:", *plan, "", "on the whole unpruned year:", *whole_plan, sep="\n")
    assert plan[0] == ("keep    2026-12-31 03:00:00 UTC  daily-web1-20261231T030000Z.tar.zst  "
                       "(newest successful, daily 2026-12-31, weekly 2026-W53, monthly 2026-12)")
    assert [line for line in plan if line.startswith("remove")] == [
        "remove  2026-12-24 03:00:00 UTC  daily-web1-20261224T030000Z.tar.zst  (no rule keeps it)"]
