"""Store a finished archive on each of a job's destinations; keep it in the spool for a later upload
when a destination is out of reach, so no backup is lost because the network was down at 03:00."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from ..destinations import registry
from ..destinations.base import ArchiveMeta, DestinationError
from .result import DestinationResult

log = logging.getLogger("backupd.store")


def store_everywhere(run, path: Path, meta: ArchiveMeta) -> bool:
    """Store on every destination of the job; True if the spool copy must be kept for a later upload.

    Any failed destination keeps the archive pending: a quota or credential fixed by the operator
    lets the next run deliver it."""
    keep = False
    for config in run.config.job_destinations(run.job):
        result = DestinationResult(name=config.name)
        run.record.destinations.append(result)
        if not _store_one(run, config, path, meta, result):
            run.history.add_pending(meta.name, config.name, run.job.name, run.run_id, asdict(meta))
            result.status = "pending-upload"
            keep = True
    failed = [r for r in run.record.destinations if r.status != "success"]
    if failed:
        first = failed[0]
        run.record.fail("destination", f"destination '{first.name}': {first.error}", kind=first.kind)
    return keep


def _store_one(run, config, path: Path, meta: ArchiveMeta, result: DestinationResult) -> bool:
    """Store on one destination, filling `result`; True on success."""
    stage = f"{'storing on' if config.type == 'local' else 'uploading to'} {config.name}"
    run.progress.set(stage, 0, meta.size)
    extra = {**run.extra, "destination": config.name, "archive": meta.name}
    destination = registry.build(config, run.config.daemon.state_dir, cancel=run.cancel)
    try:
        stored = destination.store(path, meta, progress=lambda done, total: run.progress.set(stage, done, total))
    except DestinationError as exc:
        result.status, result.error, result.kind = "failed", str(exc), exc.kind
        log.error("destination failed", extra={**extra, "kind": exc.kind, "permanent": exc.permanent,
                                               "error": str(exc)})
        return False
    finally:
        destination.close()
    result.status, result.location = "success", stored.location
    result.file_id, result.link = stored.file_id, stored.link
    log.info("destination stored", extra={**extra, "location": stored.location, "file_id": stored.file_id,
                                          "link": stored.link, "size": stored.size})
    return True


def upload_pending(run) -> None:
    """Retry uploads that an earlier run of this job left in the spool."""
    for item in run.history.pending(run.job.name):
        if item["run_id"] == run.run_id:
            continue   # this run's own upload just failed: the next run retries it
        config = run.config.destinations.get(item["destination"])
        path = run.spool.final_path(item["archive"])
        if config is None or not path.exists():
            log.warning("pending upload dropped", extra={**run.extra, "archive": item["archive"],
                        "destination": item["destination"],
                        "reason": "destination no longer configured" if config is None else "spool copy gone"})
            _forget(run, item)
            continue
        run.cancel.check()
        result = DestinationResult(name=f"{config.name} (pending from run {item['run_id']})")
        run.record.destinations.append(result)
        if _store_one(run, config, path, ArchiveMeta(**item["meta"]), result):
            _forget(run, item)
        else:
            run.record.fail("destination", f"pending upload of {item['archive']} to "
                            f"'{config.name}' failed again: {result.error}", kind=result.kind)


def _forget(run, item: dict) -> None:
    run.history.remove_pending(item["archive"], item["destination"])
    if not any(p["archive"] == item["archive"] for p in run.history.pending()):
        run.spool.final_path(item["archive"]).unlink(missing_ok=True)
