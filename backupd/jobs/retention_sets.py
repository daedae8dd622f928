"""Retention over backup sets: which differentials can be restored, the fulls their kept differentials keep.

A backup set is one full and the differentials made against it (never a chain). Each differential is a restore
point of its own, but restoring it needs its full, so:
- a differential whose full is not among the listed backups, or whose full failed verification, cannot be
  restored from there: it counts toward no rule (retention.decide treats it as a failed backup);
- a kept differential keeps its full (the label "full of kept <newest kept differential>"), so a full is
  removed only when none of its differentials is kept, and never leaves a kept differential behind;
- the newest restore point that can be restored and its full are what pruning must never remove.

Pure: no I/O, stdlib and util.names only (retention.py holds Backup and Decision, which these functions read).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from ..util.names import DIFFERENTIAL, FULL, base_run_of

if TYPE_CHECKING:
    from .retention import Backup, Decision

KINDS = (FULL, DIFFERENTIAL)
FULL_OF = "full of kept"


def check_kinds(backups: Iterable[Backup]) -> None:
    """A backup's kind is full or differential, and only a differential names a full."""
    for backup in backups:
        if backup.kind not in KINDS:
            raise ValueError(f"retention: backup {backup.name!r} has kind {backup.kind!r}, not full or differential")
        if backup.kind == FULL and backup.base:
            raise ValueError(f"retention: full backup {backup.name!r} names a full of its own ({backup.base!r})")


def _base_label(backup: Backup) -> str:
    """How a reason names a differential's full: its name, else the run id its archive name gives."""
    if backup.base:
        return backup.base
    run = base_run_of(backup.name)
    return f"(run {run})" if run else "(unknown)"


def unrestorable(backups: Iterable[Backup]) -> dict[str, str]:
    """Differential name -> why it cannot be restored from these backups; a differential that can is absent."""
    by_name = {backup.name: backup for backup in backups}
    why: dict[str, str] = {}
    for backup in by_name.values():
        if backup.kind != DIFFERENTIAL:
            continue
        full = by_name.get(backup.base)
        if full is None or full.kind != FULL:
            why[backup.name] = (f"its full {_base_label(backup)} is not at this destination: cannot be restored "
                                "here, counts toward no rule")
        elif not full.ok:
            why[backup.name] = (f"its full {full.name} failed verification: cannot be restored, "
                                "counts toward no rule")
    return why


def keep_fulls(ordered: list[Backup], keep: dict[str, list[str]]) -> None:
    """Label each full that a kept differential needs; `ordered` newest first, `keep` name -> its labels."""
    fulls = {backup.name for backup in ordered if backup.kind == FULL}
    needed: dict[str, list[str]] = {}
    for backup in ordered:
        if backup.kind == DIFFERENTIAL and keep[backup.name] and backup.base in fulls:
            needed.setdefault(backup.base, []).append(backup.name)
    for full, differentials in needed.items():
        more = f" and {len(differentials) - 1} more" if len(differentials) > 1 else ""
        keep[full].append(f"{FULL_OF} {differentials[0]}{more}")


def protected(decisions: Iterable[Decision], now: datetime) -> tuple[str, ...]:
    """The newest restore point dated up to `now` that can be restored, then its full if it is a differential:
    never to be removed (empty when there is none)."""
    good = [d.backup for d in decisions if d.counts and d.backup.created <= now]
    if not good:
        return ()
    newest = max(good, key=lambda backup: (backup.created, backup.name))
    return (newest.name, newest.base) if newest.base else (newest.name,)


def kind_text(backup: Backup, names: set[str]) -> str:
    """The plan's kind column: 'full', or 'differential of <its full>' (or of a full that is not there)."""
    if backup.kind == FULL:
        return FULL
    if backup.base in names:
        return f"{DIFFERENTIAL} of {backup.base}"
    return f"{DIFFERENTIAL} of a missing full {_base_label(backup)}"
