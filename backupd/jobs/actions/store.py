"""Store a finished archive on each of a job's destinations; keep it in the spool for a later upload
when a destination is out of reach, so no backup is lost because the network was down at 03:00."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from ...cancel import CancelToken
from ...config import DestinationConfig
from ...destinations import registry
from ...destinations.base import ArchiveMeta, DestinationError, ErrorKind
from ..history import History
from ..result import Category, DestinationResult, DestinationStatus, RunRecord

log = logging.getLogger("backupd.store")
BASE_ABSENT = "base-missing"    # a DestinationResult's kind: a differential whose full the destination lacks
StageProgress = Callable[..., None]     # (stage, bytes done, bytes total): RunProgress.set


@dataclass(frozen=True)
class StoreContext:
    """What storing needs: the destinations, where state lives, how to stop, report and record."""

    destinations: Mapping[str, DestinationConfig]   # every configured destination, by name
    state_dir: Path
    history: History            # failed destinations are recorded as pending uploads; each result is saved
    cancel: CancelToken
    progress: StageProgress
    log_extra: dict


def store_everywhere(ctx: StoreContext, names, path: Path, meta: ArchiveMeta, record: RunRecord) -> bool:
    """Store on the destinations `names`, adding their results to `record`; True if the spool copy must
    be kept for a later upload.

    Any failed destination keeps the archive pending: a quota or credential fixed by the operator
    lets the next run deliver it. The record is saved as each destination's result is known, so a kill
    later in the run (after the spool copy is gone) finds where the archive was stored."""
    keep = False
    for name in names:
        result = DestinationResult(name=name)
        record.destinations.append(result)
        if not store_one(ctx, ctx.destinations[name], path, meta, result):
            if result.kind == BASE_ABSENT:
                ctx.history.save(record)
                continue            # never stored there: a later upload could not help
            ctx.history.add_pending(meta.name, name, meta.job, meta.run_id, asdict(meta))
            if result.permanent:
                ctx.history.hold_pending(meta.name, name, result.error)
            result.status = DestinationStatus.PENDING_UPLOAD
            keep = True
        ctx.history.save(record)
    failed = [r for r in record.destinations if r.status != DestinationStatus.SUCCESS]
    if failed:
        first = failed[0]
        record.fail(Category.DESTINATION, f"destination '{first.name}': {first.error}", kind=first.kind)
    return keep


def store_one(ctx: StoreContext, config: DestinationConfig, path: Path, meta: ArchiveMeta,
              result: DestinationResult) -> bool:
    """Store on one destination, filling `result`; True on success."""
    destination = registry.build(config, ctx.state_dir, cancel=ctx.cancel)
    stage = f"{destination.verb} {config.name}"
    ctx.progress(stage, 0, meta.size)
    extra = {**ctx.log_extra, "destination": config.name, "archive": meta.name}
    try:
        _check_base(ctx, destination, meta)
        stored = destination.store(path, meta, progress=lambda done, total: ctx.progress(stage, done, total))
    except DestinationError as exc:
        result.status, result.error, result.kind = DestinationStatus.FAILED, str(exc), exc.kind
        result.permanent = exc.permanent
        if isinstance(exc, BaseAbsent):
            result.kind = BASE_ABSENT
        if exc.kind == ErrorKind.VERIFY:
            ctx.history.record_check(meta.name, config.name, ok=False, detail=str(exc))
        log.error("destination failed", extra={**extra, "kind": exc.kind, "permanent": exc.permanent,
                                               "error": str(exc)})
        return False
    finally:
        destination.close()
    result.status, result.location = DestinationStatus.SUCCESS, stored.location
    result.file_id, result.link = stored.file_id, stored.link
    ctx.history.record_check(meta.name, config.name, ok=True)    # stored means verified
    log.info("destination stored", extra={**extra, "location": stored.location, "file_id": stored.file_id,
                                          "link": stored.link, "size": stored.size})
    return True


class BaseAbsent(DestinationError):
    """A differential's full is not at the destination."""


def _check_base(ctx: StoreContext, destination, meta: ArchiveMeta) -> None:
    """A differential is stored only where its full is (or its upload is waiting, to go first)."""
    if not meta.base or any(item.name == meta.base for item in destination.list(meta.job)):
        return
    if any(item["archive"] == meta.base and item["destination"] == destination.name
           for item in ctx.history.pending(meta.job)):
        raise DestinationError(f"its full {meta.base} is still waiting to be uploaded there; it goes first",
                               ErrorKind.NETWORK, permanent=False)
    raise BaseAbsent(f"its full {meta.base} is not there, and a differential cannot be restored without it: "
                     "not stored (the next run makes a new full)", ErrorKind.NOT_FOUND)
