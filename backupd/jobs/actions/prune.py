"""Prune: apply a job's keep policy to what each destination holds, remove what no rule keeps, record it.

Only backupd's own archives of this job and this host are candidates (the destination's list() holds only
backupd's archives; their job, host and name must also fit): anything else is never touched. A destination
whose listing fails prunes nothing, and the newest successful backup is never removed whatever the policy.
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
from ..history import History
from ..result import DestinationStatus, RunRecord, Status
from ..retention import Backup, Decision, decide, format_plan
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
                             "kept": d.kept, "rules": list(d.rules), "reason": d.reason} for d in self.decisions],
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
        backups = candidates(listed, ctx.job.name, ctx.history.failed_checks(config.name))
        now = ctx.now or utc_now()
        try:
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
    with a creation time; a backup whose verification failed is not ok."""
    host = host_name()
    pattern = archive_pattern(job, host)
    found = []
    for stored in listed:
        created = _created(stored.created)
        if (stored.job != job or stored.extra.get("host") != host or not pattern.fullmatch(stored.name)
                or not stored.sha256 or created is None):
            continue
        found.append(Backup(stored.name, created, ok=stored.name not in failed_checks, ref=stored))
    return found


def _created(text: str) -> datetime | None:
    try:
        created = parse_iso(text)
    except ValueError:
        return None
    return created if created is not None and created.utcoffset() is not None else None


def _newest_ok(plan: PrunePlan, now: datetime) -> str | None:
    good = [d.backup for d in plan.decisions if d.backup.ok and d.backup.created <= now]
    return max(good, key=lambda b: (b.created, b.name)).name if good else None


def _remove(ctx: PruneContext, destination, plan: PrunePlan, now: datetime, extra: dict) -> None:
    """Delete what the plan does not keep, oldest first, each recorded as its delete begins (the next prune
    finishes one a kill cut short); stop at the first error."""
    newest = _newest_ok(plan, now)
    policy = ctx.job.keep.describe()
    for decision in reversed(plan.decisions):
        name = decision.backup.name
        if decision.kept:
            continue
        if name == newest:   # the policy never gives this up; should that ever change, nothing is removed
            plan.error = f"refused to remove {name}: it is the newest successful backup"
            log.error("prune refused to remove the newest successful backup", extra={**extra, "archive": name})
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
