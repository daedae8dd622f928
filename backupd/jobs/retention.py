"""Retention: which backups a keep policy keeps, and the rules that keep each one.

The semantics are restic `forget`'s: for each period kind, walk the backups newest first; the newest backup
of each of the newest N periods that have one is kept; `last N` keeps the N newest; `within` keeps everything
newer than `now` minus the duration; a backup kept by any rule is kept. Periods are local to the job's time
zone: hour (Y-m-d H), day, ISO week (ISO year + week number), month, year. One difference from restic:
`within` counts back from `now`, not from the newest backup (which is kept anyway, see below).

Built-in safety, whatever the policy:
- An empty policy (every rule absent) keeps everything, failed backups included: nothing is pruned.
- The newest successful backup dated no later than `now` is always kept ("newest successful").
- A backup dated after `now` is kept ("dated after now"): the clock may have jumped backwards, and what
  looks newer than now is never deleted. Its date cannot be trusted, so it counts toward no rule either:
  it neither uses up a `last` slot or a period nor becomes "newest successful" instead of the backup just made.
- A backup whose verification failed (ok=False) counts toward no rule and is never kept by one, so it cannot
  take the slot of a good backup: the decision for every good backup is the same with or without the failed
  ones. Under a non-empty policy a failed backup is removed unless it is dated after `now`.
- Backup sets: a differential (kind "differential", `base` = its full's name) is a restore point like a full and
  counts toward the rules the same way. A kept differential keeps its full ("full of kept <name>"), so a full
  goes only together with all of its differentials, when none of them is kept; the newest successful restore
  point and its full (the newest complete set) are always kept. A differential whose full is not among the
  backups, or whose full failed verification, cannot be restored: like a failed backup it counts toward no rule
  and is removed under a non-empty policy unless dated after `now` (the set rules: jobs/retention_sets.py).
- Duplicate timestamps are ordered by name (of two backups created at the same instant, the one whose name
  sorts last counts as the newer). Names must be unique; a duplicate name is an error, so nothing is decided.

Pure: no I/O, stdlib and util.names only. The policy itself (KeepPolicy) is the configuration's `keep` table
(config/keep.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Callable, Iterable

from ..config.keep import KeepPolicy, format_duration
from ..util.names import FULL
from .retention_sets import check_kinds, keep_fulls, kind_text, protected, unrestorable

__all__ = ["AFTER_NOW", "NEWEST_OK", "NO_POLICY", "PERIODS", "Backup", "Decision", "KeepPolicy", "decide",
           "format_duration", "format_plan", "kept", "newest_per_period", "protected"]

NO_POLICY = "no keep policy"
NEWEST_OK = "newest successful"
AFTER_NOW = "dated after now"


def _iso_week(local: datetime) -> str:
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


# Period rule -> the period of a local time; the key also names the period in a decision ("daily 2026-11-30").
# The same rules, in the same order, as config.keep.PERIOD_RULES.
PERIODS: dict[str, Callable[[datetime], str]] = {
    "hourly": lambda local: f"{local:%Y-%m-%d %H}:00",
    "daily": lambda local: f"{local:%Y-%m-%d}",
    "weekly": _iso_week,
    "monthly": lambda local: f"{local:%Y-%m}",
    "yearly": lambda local: f"{local:%Y}",
}


@dataclass(frozen=True)
class Backup:
    """One candidate: its unique name, creation time (aware), whether it verified, its kind and, for a
    differential, its full's name ("" when the full is not known); `ref` is the caller's."""

    name: str
    created: datetime
    ok: bool = True
    kind: str = FULL
    base: str = ""
    ref: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    """What the policy does with one backup; `rules` lists what keeps it, empty when it would be removed;
    `unrestorable` says why a differential cannot be restored from these backups ("" when it can)."""

    backup: Backup
    local: datetime
    rules: tuple[str, ...]
    unrestorable: str = ""

    @property
    def kept(self) -> bool:
        return bool(self.rules)

    @property
    def counts(self) -> bool:
        """A restore point the rules may count: it verified and, a differential, its full is there and good."""
        return self.backup.ok and not self.unrestorable

    @property
    def reason(self) -> str:
        """The rules that keep it, or why nothing does."""
        if self.rules:
            return ", ".join(self.rules)
        if not self.backup.ok:
            return "verification failed, counts toward no rule"
        return self.unrestorable or "no rule keeps it"


def _age(backup: Backup) -> tuple[datetime, str]:
    """Sort key: the larger, the newer; equal times are ordered by name."""
    return backup.created, backup.name


def _check_inputs(backups: list[Backup], now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError(f"retention: 'now' must be an aware datetime, got {now.isoformat()}")
    seen: set[str] = set()
    for backup in backups:
        if backup.created.utcoffset() is None:
            raise ValueError(f"retention: backup {backup.name!r} has a creation time without a time zone")
        if backup.name in seen:
            raise ValueError(f"retention: backup name {backup.name!r} appears twice; nothing decided")
        seen.add(backup.name)
    check_kinds(backups)


def newest_per_period(count: int, period_of: Callable[[datetime], str], counted: list[Backup],
                      tz: tzinfo) -> dict[str, Backup]:
    """Period key -> its newest backup, for the newest `count` periods that have one (`counted` newest first)."""
    picked: dict[str, Backup] = {}
    for backup in counted:
        key = period_of(backup.created.astimezone(tz))
        if key in picked:
            continue
        if len(picked) == count:
            break
        picked[key] = backup
    return picked


def _apply_rules(policy: KeepPolicy, counted: list[Backup], now: datetime, tz: tzinfo,
                 keep: dict[str, list[str]]) -> None:
    """Add each rule's label to the backups it keeps; `counted` holds the good backups up to now, newest first."""
    if counted:
        keep[counted[0].name].append(NEWEST_OK)
    for rank, backup in enumerate(counted[:policy.last or 0], start=1):
        keep[backup.name].append(f"last {rank}")
    for kind, period_of in PERIODS.items():
        count = getattr(policy, kind)
        if count is not None:
            for key, backup in newest_per_period(count, period_of, counted, tz).items():
                keep[backup.name].append(f"{kind} {key}")
    if policy.within is not None:
        cutoff = now - timedelta(seconds=policy.within)
        label = f"within {format_duration(policy.within)}"
        for backup in counted:
            if backup.created <= cutoff:
                break
            keep[backup.name].append(label)


def decide(policy: KeepPolicy, backups: Iterable[Backup], now: datetime, tz: tzinfo) -> list[Decision]:
    """A decision for every backup, newest first."""
    ordered = sorted(backups, key=_age, reverse=True)
    _check_inputs(ordered, now)
    keep: dict[str, list[str]] = {backup.name: [] for backup in ordered}
    cannot = unrestorable(ordered)
    if policy.empty:
        for labels in keep.values():
            labels.append(NO_POLICY)
    else:
        for backup in ordered:
            if backup.created > now:
                keep[backup.name].append(AFTER_NOW)
        counted = [backup for backup in ordered
                   if backup.ok and backup.name not in cannot and backup.created <= now]
        _apply_rules(policy, counted, now, tz, keep)
        keep_fulls(ordered, keep)
    return [Decision(backup, backup.created.astimezone(tz), tuple(keep[backup.name]), cannot.get(backup.name, ""))
            for backup in ordered]


def kept(decisions: Iterable[Decision]) -> list[Backup]:
    """The backups the decisions keep, in the decisions' order."""
    return [decision.backup for decision in decisions if decision.kept]


def format_plan(decisions: Iterable[Decision]) -> list[str]:
    """What `prune --dry-run` prints: one line per backup, newest first, with what keeps it or that nothing does.
    Where a differential is among them, a column after the name gives each one's kind (and a differential's
    full); a plan of fulls alone reads as it always did."""
    ordered = sorted(decisions, key=lambda decision: _age(decision.backup), reverse=True)
    width = max((len(decision.backup.name) for decision in ordered), default=0)
    names = {decision.backup.name for decision in ordered}
    kinds = [kind_text(decision.backup, names) for decision in ordered]
    if all(kind == FULL for kind in kinds):
        kinds = ["" for _ in ordered]
    kind_width = max((len(kind) + 2 for kind in kinds if kind), default=0)
    return [f"{'keep' if decision.kept else 'remove':<8}{decision.local:%Y-%m-%d %H:%M:%S %Z}  "
            f"{decision.backup.name:<{width}}  {kind:<{kind_width}}({decision.reason})"
            for decision, kind in zip(ordered, kinds)]
