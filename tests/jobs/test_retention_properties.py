"""The keep policy over random histories: safety rules, and agreement with a separately written reference."""
from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import HealthCheck, given, settings, strategies as st

from backupd.jobs.retention import Backup, KeepPolicy, decide, kept

UTC = timezone.utc
START = datetime(2025, 1, 1, tzinfo=UTC)
TWO_YEARS = 2 * 365 * 86400
ZONES = [UTC] + [ZoneInfo(name) for name in ("Europe/Berlin", "America/New_York", "America/Santiago",
                                             "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham")
                 if name in available_timezones()]
# No example database: nothing is written into the checkout.
PROPERTY = settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SIDE = settings(PROPERTY, max_examples=200)

# Reference: every period as a tuple of local calendar fields, written apart from the module's string keys.
REFERENCE_PERIODS = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar())[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


def newest(group):
    return max(group, key=lambda b: (b.created, b.name))


def reference(policy: KeepPolicy, backups: list[Backup], now: datetime, tz) -> dict[str, set[str]]:
    """Rule kind -> names it keeps: group the good backups up to now by period, take the newest N groups."""
    if all(value is None for value in vars(policy).values()):
        return {"no": {b.name for b in backups}} if backups else {}
    good = [b for b in backups if b.ok and b.created <= now]
    by_rule = {"dated": {b.name for b in backups if b.created > now}}
    if good:
        by_rule["newest"] = {newest(good).name}
    ranked = sorted(good, key=lambda b: (b.created, b.name), reverse=True)
    by_rule["last"] = {b.name for b in ranked[:policy.last or 0]}
    for kind, period_of in REFERENCE_PERIODS.items():
        count = getattr(policy, kind)
        groups = defaultdict(list)
        for b in good:
            groups[period_of(b.created.astimezone(tz))].append(b)
        newest_periods = sorted(groups, reverse=True)[:count or 0]
        by_rule[kind] = {newest(groups[period]).name for period in newest_periods}
    if policy.within is not None:
        by_rule["within"] = {b.name for b in good if now - b.created < timedelta(seconds=policy.within)}
    return {kind: names for kind, names in by_rule.items() if names}


def rules_by_kind(decisions) -> dict[str, set[str]]:
    """The module's labels grouped by their first word ('daily 2026-11-30' -> 'daily')."""
    by_kind = defaultdict(set)
    for decision in decisions:
        for label in decision.rules:
            by_kind[label.split()[0]].add(decision.backup.name)
    return dict(by_kind)


@st.composite
def histories(draw):
    """Runs at a random rhythm over about two years, some at equal times, some failed, and a `now`."""
    scale = draw(st.sampled_from([60, 3600, 86400, 7 * 86400, 30 * 86400]))
    first = draw(st.integers(0, TWO_YEARS))
    runs = draw(st.integers(0, 60))
    gaps = draw(st.lists(st.integers(-scale, 3 * scale).map(lambda gap: max(gap, 0)), min_size=runs, max_size=runs))
    scattered = draw(st.lists(st.integers(0, TWO_YEARS), max_size=5))
    offsets = list(itertools.accumulate(gaps, initial=first))[1:] + scattered
    names = draw(st.permutations(range(len(offsets))))
    ok = draw(st.lists(st.integers(0, 3).map(bool), min_size=len(offsets), max_size=len(offsets)))
    history = [Backup(f"b{name:03d}", START + timedelta(seconds=offset), ok=good)
               for name, offset, good in zip(names, offsets, ok)]
    earliest, latest = min(offsets + [first]), max(offsets + [first])
    # Mostly just after the last run; sometimes the clock has jumped back into (or before) the history.
    now_offset = draw(st.one_of(st.integers(latest, latest + 2 * scale), st.integers(earliest - scale, latest)))
    return history, START + timedelta(seconds=now_offset)


count = st.one_of(st.none(), st.integers(1, 6))
policies = st.builds(KeepPolicy, last=count, hourly=count, daily=count, weekly=count, monthly=count,
                     yearly=count, within=st.one_of(st.none(), st.integers(1, 60 * 86400)))


@PROPERTY
@given(histories(), policies, st.sampled_from(ZONES))
def test_policy_keeps_what_the_reference_keeps_and_never_breaks_the_safety_rules(history_now, policy, tz):
    history, now = history_now
    decisions = decide(policy, history, now, tz)
    survivors = kept(decisions)
    names = {b.name for b in survivors}
    assert [d.backup for d in decisions] == sorted(history, key=lambda b: (b.created, b.name), reverse=True)
    # (a) the newest good backup up to now is kept, and so is at least one good backup whenever one exists.
    good_so_far = [b for b in history if b.ok and b.created <= now]
    if good_so_far:
        assert newest(good_so_far).name in names
    if any(b.ok for b in history):
        assert any(b.ok for b in survivors)
    # (b) nothing dated after now is removed.
    assert {b.name for b in history if b.created > now} <= names
    # (d) every rule keeps exactly what the reference says it keeps, hence the same kept set.
    assert rules_by_kind(decisions) == reference(policy, history, now, tz)
    # (e) applying the policy again to what it kept keeps all of it, with the same rules.
    again = decide(policy, survivors, now, tz)
    assert [(d.backup, d.rules) for d in again] == [(d.backup, d.rules) for d in decisions if d.kept]


@SIDE
@given(histories(), policies, st.sampled_from(ZONES))
def test_failed_backups_change_no_decision_about_good_ones(history_now, policy, tz):
    """(c) A good backup's fate is the same with or without the failed ones beside it, and under any policy a
    failed backup dated up to now is removed (it counts toward no rule); only an empty policy keeps it."""
    history, now = history_now
    with_failed = {d.backup.name: d.rules for d in decide(policy, history, now, tz)}
    only_good = {d.backup.name: d.rules for d in decide(policy, [b for b in history if b.ok], now, tz)}
    assert {name: with_failed[name] for name in only_good} == only_good
    for b in history:
        if not b.ok and b.created <= now:
            assert with_failed[b.name] == (("no keep policy",) if policy.empty else ())


@SIDE
@given(histories(), st.sampled_from(ZONES), st.randoms(use_true_random=False))
def test_decisions_do_not_depend_on_input_order(history_now, tz, shuffler):
    history, now = history_now
    policy = KeepPolicy(last=2, hourly=3, daily=2, weekly=2)
    shuffled = list(history)
    shuffler.shuffle(shuffled)
    assert decide(policy, shuffled, now, tz) == decide(policy, history, now, tz)
