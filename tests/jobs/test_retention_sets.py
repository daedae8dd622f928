"""The keep policy over backup sets (a full and its differentials): restore points, the fulls kept differentials
keep, differentials that cannot be restored, and the plan's kind column."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backupd.jobs.retention import Backup, KeepPolicy, decide, format_plan, kept, protected

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def full(name: str, when: str, ok: bool = True) -> Backup:
    return Backup(name, at(when), ok=ok)


def diff(name: str, when: str, base: str, ok: bool = True) -> Backup:
    return Backup(name, at(when), ok=ok, kind="differential", base=base)


def a_week(prefix: str = "", start: int = 23) -> list[Backup]:
    """A full on Nov <start> and a differential against it on each of the six days after."""
    first = f"{prefix}full-{start}"
    return [full(first, f"2026-11-{start}T03:00")] + [
        diff(f"{prefix}diff-{day}", f"2026-11-{day}T03:00", first) for day in range(start + 1, start + 7)]


def rules(policy, candidates, now=NOW) -> dict[str, tuple[str, ...]]:
    return {d.backup.name: d.rules for d in decide(policy, candidates, now, UTC)}


def reasons(policy, candidates, now=NOW) -> dict[str, str]:
    return {d.backup.name: d.reason for d in decide(policy, candidates, now, UTC)}


def test_differentials_are_restore_points_and_a_kept_one_keeps_its_full():
    assert rules(KeepPolicy(daily=2), a_week()) == {
        "diff-29": ("newest successful", "daily 2026-11-29"), "diff-28": ("daily 2026-11-28",),
        "diff-27": (), "diff-26": (), "diff-25": (), "diff-24": (),
        "full-23": ("full of kept diff-29 and 1 more",)}
    assert reasons(KeepPolicy(last=1), a_week())["full-23"] == "full of kept diff-29"


def test_a_full_goes_only_with_all_of_its_differentials():
    history = a_week("old-", 16) + a_week()
    decisions = decide(KeepPolicy(daily=3), history, NOW, UTC)
    assert [b.name for b in kept(decisions)] == ["diff-29", "diff-28", "diff-27", "full-23"]
    weekly = rules(KeepPolicy(weekly=2), history)
    assert weekly == {**{name: () for name in weekly}, "diff-29": ("newest successful", "weekly 2026-W48"),
                      "full-23": ("full of kept diff-29",), "old-diff-22": ("weekly 2026-W47",),
                      "old-full-16": ("full of kept old-diff-22",)}
    # a full kept by a rule of its own says so too
    assert rules(KeepPolicy(daily=7), a_week())["full-23"] == ("daily 2026-11-23", "full of kept diff-29 and 5 more")


def test_the_newest_complete_set_stays_whatever_the_policy():
    decisions = decide(KeepPolicy(within=60), a_week("old-", 16) + a_week(), NOW, UTC)
    assert [(d.backup.name, d.rules) for d in decisions if d.kept] == [
        ("diff-29", ("newest successful",)), ("full-23", ("full of kept diff-29",))]
    assert protected(decisions, NOW) == ("diff-29", "full-23")


def test_a_differential_whose_full_is_not_listed_counts_for_nothing_and_goes():
    history = a_week()[1:] + [Backup("daily-web1-20261130T030000Z-0a1b2c3d-diff-9f8e7d6c.tar.zst",
                                     at("2026-11-30T03:00"), kind="differential")]
    decisions = decide(KeepPolicy(last=3), history, NOW, UTC)
    assert kept(decisions) == [] and protected(decisions, NOW) == ()
    assert {d.reason for d in decisions} == {
        "its full full-23 is not at this destination: cannot be restored here, counts toward no rule",
        "its full (run 9f8e7d6c) is not at this destination: cannot be restored here, counts toward no rule"}


def test_an_unrestorable_differential_dated_after_now_is_kept_and_keeps_its_full():
    history = [full("f", "2026-11-30T03:00", ok=False), diff("d", "2026-12-02T03:00", "f"),
               full("g", "2026-11-29T03:00")]
    assert rules(KeepPolicy(last=1), history) == {
        "d": ("dated after now",), "f": ("full of kept d",), "g": ("newest successful", "last 1")}


def test_a_full_that_failed_verification_takes_its_differentials_with_it():
    history = a_week("old-", 16) + [full("full-23", "2026-11-23T03:00", ok=False)] + a_week()[1:]
    decisions = decide(KeepPolicy(last=2), history, NOW, UTC)
    assert [(d.backup.name, d.rules) for d in decisions if d.kept] == [
        ("old-diff-22", ("newest successful", "last 1")), ("old-diff-21", ("last 2",)),
        ("old-full-16", ("full of kept old-diff-22 and 1 more",))]
    by_name = {d.backup.name: d for d in decisions}
    assert by_name["diff-29"].reason == "its full full-23 failed verification: cannot be restored, counts toward no rule"
    assert by_name["full-23"].reason == "verification failed, counts toward no rule"
    assert not by_name["diff-29"].counts and by_name["old-diff-22"].counts


def test_an_empty_policy_keeps_every_set_even_one_that_cannot_be_restored():
    history = a_week()[1:]
    assert set(rules(KeepPolicy(), history).values()) == {("no keep policy",)}


def test_the_plan_gives_each_backups_kind_and_a_differentials_full():
    history = [full("f-1", "2026-11-29T03:00"), diff("d-2", "2026-11-30T03:00", "f-1"),
               diff("orphan-3", "2026-11-28T03:00", "f-0"), full("f-4", "2026-11-27T03:00")]
    assert format_plan(decide(KeepPolicy(last=1), history, NOW, UTC)) == [
        "keep    2026-11-30 03:00:00 UTC  d-2       differential of f-1                 (newest successful, last 1)",
        "keep    2026-11-29 03:00:00 UTC  f-1       full                                (full of kept d-2)",
        "remove  2026-11-28 03:00:00 UTC  orphan-3  differential of a missing full f-0  "
        "(its full f-0 is not at this destination: cannot be restored here, counts toward no rule)",
        "remove  2026-11-27 03:00:00 UTC  f-4       full                                (no rule keeps it)"]


@pytest.mark.parametrize("candidate, message", [
    (Backup("x", NOW, kind="incremental"), "retention: backup 'x' has kind 'incremental', not full or differential"),
    (Backup("x", NOW, base="y"), "retention: full backup 'x' names a full of its own"),
])
def test_a_backup_of_no_known_kind_decides_nothing(candidate, message):
    with pytest.raises(ValueError, match=message):
        decide(KeepPolicy(last=1), [candidate], NOW, UTC)
