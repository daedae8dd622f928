"""Prune: apply a job's keep policy to what each destination holds, remove what no rule keeps, record it.

Only backupd's own archives of this job and this host are candidates (the destination's list() holds only
backupd's archives; their job, host and name must also fit): anything else is never touched. A destination
whose listing fails prunes nothing, and the newest successful backup is never removed whatever the policy.

Backup sets are told apart from the listing alone (a reinstalled machine has no history): a differential's
archive name carries its full's run id prefix, and its full is the listed full of the same job and host whose
run id starts with it. Differentials are removed before their full, so a prune cut short never leaves a
differential without its full.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo

from ...cancel import CancelToken
from ...config import DestinationConfig, JobConfig
from ...destinations import registry
from ...destinations.base import DestinationError, StoredBackup
from ...util.clock import iso, parse_iso, utc_now
from ...util.names import DIFFERENTIAL, base_run_of, fulls_of, kind_of
from ..history import History
from ..result import DestinationStatus, RunRecord, Status
from ..retention import Backup, Decision, decide, format_plan, protected
from .archive import archive_pattern, host_name

log = logging.getLogger("backupd.prune")


@dataclass(frozen=True)
class PruneContext:
    """What pruning one job needs."""

    job: JobConfig              # its name, keep policy and time zone
    history: History            # verification failures in, deletions out
    state_dir: Path
    by: str                     # who prunes, for the record: "run 3f2a1c0d9e8b", "backupctl prune (uid 0)"
    log_extra: dict
    dry_run: bool = False
    now: datetime | None = None     # the policy's "now"; None: the time of the call
    cancel: CancelToken | None = None


@dataclass
class PrunePlan:
    """What pruning did (or with dry_run would do) at one destination."""

    destination: str
    decisions: list[Decision] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict:
        return {"destination": self.destination, "plan": format_plan(self.decisions), "removed": self.removed,
                "backups": [{"name": d.backup.name, "created": iso(d.backup.created), "ok": d.backup.ok,
                             "kind": d.backup.kind, "base": d.backup.base, "kept": d.kept, "rules": list(d.rules),
                             "reason": d.reason} for d in self.decisions],
                "error": self.error}


def after_run(ctx: PruneContext, record: RunRecord, destinations: Mapping[str, DestinationConfig]) -> list[PrunePlan]:
    """Prune the destinations that stored this run's archive, and only while every step succeeded."""
    if record.status != Status.RUNNING or record.archive is None or ctx.job.keep.empty:
        return []
    stored = {result.name for result in record.destinations if result.status == DestinationStatus.SUCCESS}
    return prune(ctx, [destinations[name] for name in ctx.job.destinations if name in stored])


def prune(ctx: PruneContext, destinations: Iterable[DestinationConfig]) -> list[PrunePlan]:
    return [prune_one(ctx, config) for config in destinations]


def prune_one(ctx: PruneContext, config: DestinationConfig) -> PrunePlan:
    plan = PrunePlan(config.name)
    extra = {**ctx.log_extra, "job": ctx.job.name, "destination": config.name, "by": ctx.by}
    destination = registry.build(config, ctx.state_dir, cancel=ctx.cancel)
    try:
        try:
            listed = destination.list(ctx.job.name)
        except (DestinationError, OSError) as exc:
            plan.error = f"cannot list the backups, nothing pruned: {exc}"
            log.error("prune skipped: the destination cannot be listed", extra={**extra, "error": str(exc)})
            return plan
        now = ctx.now or utc_now()
        try:
            backups = candidates(listed, ctx.job.name, ctx.history.failed_checks(config.name))
            plan.decisions = decide(ctx.job.keep, backups, now, ZoneInfo(ctx.job.timezone))
        except ValueError as exc:
            plan.error = f"nothing pruned: {exc}"
            log.error("prune skipped", extra={**extra, "error": str(exc)})
            return plan
        if not ctx.dry_run:
            _remove(ctx, destination, plan, now, extra)
    finally:
        destination.close()
    return plan


def candidates(listed: Iterable[StoredBackup], job: str, failed_checks: set[str]) -> list[Backup]:
    """The listed archives pruning may consider: this job's and this host's, named as backupd names them,
    with a creation time; a backup whose verification failed is not ok; a differential names its full
    ("" when no listed full is its base). Two fulls a differential could belong to are a ValueError."""
    host = host_name()
    pattern = archive_pattern(job, host)
    own = []
    for stored in listed:
        created = _created(stored.created)
        if (stored.job == job and stored.extra.get("host") == host and pattern.fullmatch(stored.name)
                and stored.sha256 and created is not None):
            own.append((stored, created))
    fulls = [stored for stored, _ in own if base_run_of(stored.name) is None]
    return [Backup(stored.name, created, ok=stored.name not in failed_checks, kind=kind_of(stored.name),
                   base=_full_of(stored.name, fulls), ref=stored) for stored, created in own]


def _full_of(name: str, fulls: list[StoredBackup]) -> str:
    """A differential's full among the listed fulls: the one whose run id starts with the name's base run."""
    matches = fulls_of(name, [(full.name, full.run_id) for full in fulls])
    if len(matches) > 1:
        raise ValueError(f"differential {name} could belong to {len(matches)} fulls ({', '.join(matches)}); "
                         "nothing decided")
    return matches[0] if matches else ""


def _created(text: str) -> datetime | None:
    try:
        created = parse_iso(text)
    except ValueError:
        return None
    return created if created is not None and created.utcoffset() is not None else None


def _removal_order(decisions: list[Decision]) -> list[Decision]:
    """What the plan does not keep, differentials first, each kind oldest first."""
    doomed = [decision for decision in reversed(decisions) if not decision.kept]
    return sorted(doomed, key=lambda decision: decision.backup.kind != DIFFERENTIAL)


def _remove(ctx: PruneContext, destination, plan: PrunePlan, now: datetime, extra: dict) -> None:
    """Delete what the plan does not keep, differentials before fulls, oldest first, each recorded as its delete
    begins (the next prune finishes one a kill cut short); stop at the first error."""
    keep_always = protected(plan.decisions, now)
    policy = ctx.job.keep.describe()
    for decision in _removal_order(plan.decisions):
        name = decision.backup.name
        if name in keep_always:   # the policy never gives these up; should that ever change, nothing is removed
            what = "the newest successful backup" if name == keep_always[0] else "the newest successful one's full"
            plan.error = f"refused to remove {name}: it is {what}"
            log.error("prune refused to remove the newest successful backup or its full",
                      extra={**extra, "archive": name})
            return
        if ctx.cancel is not None and ctx.cancel.cancelled:
            plan.error = f"stopped before removing everything: {ctx.cancel.reason}"
            return
        reason = f"{decision.reason} ({policy})"
        # recorded first: a kill during the delete never leaves a removal the audit trail does not tell
        ctx.history.record_deletion(name, plan.destination, ctx.job.name, ctx.by, reason)
        try:
            destination.delete(name)
        except (DestinationError, OSError) as exc:
            ctx.history.forget_deletion(name, plan.destination)
            plan.error = f"cannot remove {name}: {exc}"
            log.error("prune cannot remove a backup", extra={**extra, "archive": name, "error": str(exc)})
            return
        plan.removed.append(name)
        log.info("backup pruned", extra={**extra, "archive": name, "reason": reason,
                                         "backup_created": iso(decision.backup.created)})
