"""Retry the uploads that an earlier run of a job left in the spool (a destination was out of reach)."""
from __future__ import annotations

import logging

from ...destinations.base import ArchiveMeta
from ..result import Category, DestinationResult, DestinationStatus, RunRecord
from ..spool import Spool
from .store import BASE_ABSENT, StoreContext, store_one

log = logging.getLogger("backupd.store")


def upload_pending(ctx: StoreContext, spool: Spool, record: RunRecord, include_held: bool = False) -> None:
    """Upload what earlier runs of `record.job` left pending, adding the results to `record`. Uploads held
    back after a permanent failure are retried only with `include_held` (trigger --upload-pending)."""
    held = ctx.history.held()
    for item in ctx.history.pending(record.job):
        if item["run_id"] == record.run_id:
            continue   # this run's own upload just failed: the next run retries it
        config = ctx.destinations.get(item["destination"])
        path = spool.final_path(item["archive"])
        if config is None or not path.exists():
            log.warning("pending upload dropped", extra={**ctx.log_extra, "archive": item["archive"],
                        "destination": item["destination"],
                        "reason": "destination no longer configured" if config is None else "spool copy gone"})
            _forget(ctx, spool, item)
            continue
        if not include_held and (item["archive"], item["destination"]) in held:
            continue   # failed permanently: waits for a reload or trigger --upload-pending
        ctx.cancel.check()
        result = DestinationResult(name=f"{config.name} (pending from run {item['run_id']})")
        record.destinations.append(result)
        if store_one(ctx, config, path, ArchiveMeta(**item["meta"]), result) or result.kind == BASE_ABSENT:
            _forget(ctx, spool, item)       # stored, or never storable there (its full is gone)
        if result.kind == BASE_ABSENT:
            record.fail(Category.DESTINATION, f"pending upload of {item['archive']} to '{config.name}' "
                        f"dropped: {result.error}", kind=result.kind)
        elif result.status != DestinationStatus.SUCCESS:
            if result.permanent:
                ctx.history.hold_pending(item["archive"], item["destination"], result.error)
            else:
                ctx.history.unhold(item["archive"], item["destination"])
            record.fail(Category.DESTINATION, f"pending upload of {item['archive']} to "
                        f"'{config.name}' failed again: {result.error}", kind=result.kind)


def _forget(ctx: StoreContext, spool: Spool, item: dict) -> None:
    ctx.history.remove_pending(item["archive"], item["destination"])
    if not any(p["archive"] == item["archive"] for p in ctx.history.pending()):
        spool.final_path(item["archive"]).unlink(missing_ok=True)
