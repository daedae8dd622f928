"""The keep policy over random histories of backup sets (fulls and differentials, some failed, some fulls gone
from the listing, clock jumps backwards): the set invariants, and agreement with a reference written apart."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from hypothesis import given, strategies as st

from backupd.destinations.base import StoredBackup
from backupd.jobs.actions.archive import archive_name, host_name
from backupd.jobs.actions.prune import candidates
from backupd.jobs.retention import Backup, KeepPolicy, decide, kept, protected
from backupd.util.clock import iso
from tests.jobs.test_retention_properties import (PROPERTY, SIDE, START, TWO_YEARS, ZONES, newest, policies,
                                                  reference, rules_by_kind)


def restorable(backup: Backup, by_name: dict[str, Backup]) -> bool:
    """Reference: a full restores if it verified; a differential if it and its listed full did."""
    if backup.kind == "full":
        return backup.ok
    base = by_name.get(backup.base)
    return backup.ok and base is not None and base.kind == "full" and base.ok


def reference_sets(policy: KeepPolicy, history: list[Backup], now: datetime, tz) -> dict[str, set[str]]:
    """Rule kind -> names it keeps: the rules over the restore points that can be restored, then every full
    of a kept differential (rule 'full')."""
    by_name = {b.name: b for b in history}
    as_points = [b if restorable(b, by_name) else dataclasses.replace(b, ok=False) for b in history]
    by_rule = reference(policy, as_points, now, tz)
    if policy.empty:
        return by_rule
    chosen = set().union(*by_rule.values())
    fulls = {by_name[name].base for name in chosen if by_name[name].base in by_name}
    return {**by_rule, "full": fulls} if fulls else by_rule


@st.composite
def set_histories(draw):
    """Runs at a random rhythm, each a full or a differential against one of the two latest fulls; some
    failed, some at equal times or after a clock jump back; some fulls missing from the listing; a `now`."""
    scale = draw(st.sampled_from([60, 3600, 86400, 7 * 86400]))
    offset = draw(st.integers(0, TWO_YEARS))
    runs = draw(st.integers(0, 40))
    labels = draw(st.permutations(range(runs)))
    history: list[Backup] = []
    fulls: list[str] = []
    offsets = [offset]
    for label in labels:
        offset += draw(st.integers(-2 * scale, 3 * scale).map(lambda gap: gap if gap > -scale else max(gap, 0)))
        offsets.append(offset)
        ok = draw(st.integers(0, 4).map(bool))
        when = START + timedelta(seconds=offset)
        if fulls and draw(st.integers(0, 3)):
            base = draw(st.sampled_from(fulls[-2:]))
            history.append(Backup(f"d{label:03d}", when, ok=ok, kind="differential", base=base))
        else:
            fulls.append(f"f{label:03d}")
            history.append(Backup(fulls[-1], when, ok=ok))
    gone = draw(st.sets(st.sampled_from(fulls))) if fulls else set()
    history = [b for b in history if b.name not in gone]
    earliest, latest = min(offsets), max(offsets)
    now_offset = draw(st.one_of(st.integers(latest, latest + 2 * scale), st.integers(earliest - scale, latest)))
    return history, START + timedelta(seconds=now_offset)


def check_set_invariants(policy: KeepPolicy, history: list[Backup], now: datetime, decisions) -> None:
    by_name = {b.name: b for b in history}
    names = {b.name for b in kept(decisions)}
    # never a kept differential without its full (when the listing has it)
    assert {b.base for b in history if b.name in names and b.base in by_name} <= names
    # nothing kept only partially: a full that goes takes every one of its differentials with it
    for b in history:
        if b.kind == "differential" and b.base in by_name and b.base not in names:
            assert b.name not in names
    # the newest complete set: the newest restore point that can be restored (up to now) and its full
    points = [b for b in history if restorable(b, by_name) and b.created <= now]
    if points:
        point = newest(points)
        assert {point.name, point.base} - {""} <= names
        assert protected(decisions, now) == tuple(n for n in (point.name, point.base) if n)
    # a differential that cannot be restored is kept only by an empty policy or when dated after now
    for d in decisions:
        if d.backup.kind == "differential" and d.backup.ok and not restorable(d.backup, by_name):
            assert "cannot be restored" in d.unrestorable
            assert d.kept == (policy.empty or d.backup.created > now)


@PROPERTY
@given(set_histories(), policies, st.sampled_from(ZONES))
def test_sets_keep_what_the_reference_keeps_and_are_never_kept_in_part(history_now, policy, tz):
    history, now = history_now
    decisions = decide(policy, history, now, tz)
    assert [d.backup for d in decisions] == sorted(history, key=lambda b: (b.created, b.name), reverse=True)
    check_set_invariants(policy, history, now, decisions)
    assert rules_by_kind(decisions) == reference_sets(policy, history, now, tz)
    # applying the policy again to what it kept keeps all of it, with the same rules
    again = decide(policy, kept(decisions), now, tz)
    assert [(d.backup, d.rules) for d in again] == [(d.backup, d.rules) for d in decisions if d.kept]


@SIDE
@given(set_histories(), policies, st.sampled_from(ZONES), st.randoms(use_true_random=False))
def test_set_decisions_do_not_depend_on_input_order(history_now, policy, tz, shuffler):
    history, now = history_now
    shuffled = list(history)
    shuffler.shuffle(shuffled)
    assert decide(policy, shuffled, now, tz) == decide(policy, history, now, tz)


@SIDE
@given(set_histories(), policies, st.sampled_from(ZONES))
def test_unrestorable_differentials_change_no_decision_about_restore_points(history_now, policy, tz):
    """A restore point's rules of its own are the same with or without the differentials that cannot be
    restored beside it (only the 'full of kept' label of a full may differ)."""
    history, now = history_now
    by_name = {b.name: b for b in history}
    usable = [b for b in history if b.kind == "full" or restorable(b, by_name)]

    def own_rules(backups):
        return {d.backup.name: tuple(r for r in d.rules if not r.startswith("full of kept"))
                for d in decide(policy, backups, now, tz)}
    assert {name: rules for name, rules in own_rules(history).items() if name in by_name and
            by_name[name] in usable} == own_rules(usable)


def as_listing(history: list[Backup], named_only: set[str]) -> tuple[list[StoredBackup], dict[str, str]]:
    """What a destination would list for these backups (real archive names and run ids; the backups in
    `named_only` without a run id, as an old sidecar might be), and archive name -> the history's name."""
    def run_id(name: str) -> str:
        return f"{int(name[1:]):08x}{int(name[1:]) % 0xffff:04x}"
    listed, names = [], {}
    for b in history:
        base_run = run_id(b.base) if b.kind == "differential" else ""
        name = archive_name("daily", b.created, run_id(b.name), base_run_id=base_run)
        listed.append(StoredBackup(name=name, size=1, location=name, job="daily", sha256="0" * 64,
                                   run_id="" if b.name in named_only else run_id(b.name), created=iso(b.created),
                                   extra={"host": host_name()}))
        names[name] = b.name
    return listed, names


@SIDE
@given(set_histories(), st.data())
def test_the_listing_alone_tells_each_differential_its_full(history_now, data):
    """The prune action's candidates, from a listing of archive names and run ids only, are the history's
    backups: same kinds, and each differential's full (none where its full is not listed)."""
    history, _ = history_now
    named_only = data.draw(st.sets(st.sampled_from([b.name for b in history]))) if history else set()
    listed, names = as_listing(history, named_only)
    by_name = {b.name: b for b in history}
    found = [(names[b.name], b.created, b.kind, names.get(b.base, "")) for b in candidates(listed, "daily", set())]
    assert found == [(b.name, b.created, b.kind, b.base if b.base in by_name else "") for b in history]
