"""What waits in the spool for an upload and why, and the bound daemon.spool_max sets on it: when the archives
awaiting upload take more, the oldest of the job are dropped (never its newest) and recorded lost where no
upload reached."""
from __future__ import annotations

import logging

from ...util.units import human_size
from ..history import History
from ..result import DestinationStatus
from ..spool import Spool

log = logging.getLogger("backupd.spool")
NEXT_RUN = "retried at the next run"
HELD = "failed permanently ({error}); retried after a reload or `backupctl trigger {job} --upload-pending`"


def waiting(history: History, spool: Spool) -> list[dict]:
    """Each archive awaiting upload, oldest first: its job, size and, for each destination, why it waits."""
    held = history.held()
    archives: dict[str, dict] = {}
    written: dict[str, int] = {}    # when the spool copy was written: orders archives made in the same second
    for item in history.pending():
        name = item["archive"]
        if name not in archives:
            size, written[name] = spool.stat(name)
            archives[name] = {"archive": name, "job": item["job"], "run_id": item["run_id"],
                              "created": item["meta"].get("created") or "", "size": size, "destinations": []}
        hold = held.get((name, item["destination"]))
        why = HELD.format(error=hold["error"], job=item["job"]) if hold else NEXT_RUN
        archives[name]["destinations"].append({"destination": item["destination"], "held": hold is not None,
                                               "why": why})
    return sorted(archives.values(), key=lambda entry: (entry["created"], written[entry["archive"]],
                                                        entry["archive"]))


def report(history: History, spool: Spool, limit: int) -> dict:
    """The spool for `backupctl status`: bytes awaiting upload, the bound, and what waits."""
    items = waiting(history, spool)
    return {"bytes": sum(item["size"] for item in items), "max": limit, "archives": items}


def bound(history: History, spool: Spool, limit: int, job: str, log_extra: dict) -> list[str]:
    """While the archives awaiting upload take more than `limit`, drop the oldest of `job` (never its newest);
    one line for each dropped archive."""
    items = waiting(history, spool)
    total = sum(item["size"] for item in items)
    own = [item for item in items if item["job"] == job][:-1]    # oldest first, the newest left out
    dropped = []
    for item in own:
        if total <= limit:
            break
        dropped.append(_drop(history, spool, item, total, limit, log_extra))
        total -= item["size"]
    if total > limit:
        log.warning("the spool is over daemon.spool_max", extra={**log_extra, "bytes": total, "spool_max": limit})
    return dropped


def _drop(history: History, spool: Spool, item: dict, total: int, limit: int, log_extra: dict) -> str:
    """Remove one archive from the spool; the destinations it was waiting for record it lost."""
    lost_at = [entry["destination"] for entry in item["destinations"]]
    held_at = _mark_lost(history, item, lost_at, total, limit)
    for destination in lost_at:
        history.remove_pending(item["archive"], destination)
    spool.final_path(item["archive"]).unlink(missing_ok=True)
    log.error("pending archive dropped from the spool", extra={
        **log_extra, "archive": item["archive"], "archive_job": item["job"], "size": item["size"],
        "lost_at": lost_at, "still_at": held_at, "spool_bytes": total, "spool_max": limit})
    where = f"still at {', '.join(held_at)}" if held_at else "no destination holds it"
    return f"dropped {item['archive']} from the full spool: lost at {', '.join(lost_at)}, {where}"


def _mark_lost(history: History, item: dict, lost_at: list[str], total: int, limit: int) -> list[str]:
    """Record in the archive's own run that it will never reach `lost_at`; the destinations that hold it
    (every pending destination is in `lost_at`)."""
    record = history.get(item["run_id"])
    if record is None:
        return []
    error = (f"dropped from the spool before it could be stored here: the archives awaiting upload took "
             f"{human_size(total)}, over daemon.spool_max ({human_size(limit)}); the oldest go first")
    for result in record.destinations:
        if result.name in lost_at:
            result.status, result.error = DestinationStatus.LOST, error
    history.save(record)
    # stored by the run, or by a later pending upload (the run's record still says pending-upload then)
    delivered = (DestinationStatus.SUCCESS, DestinationStatus.PENDING_UPLOAD)
    return [result.name for result in record.destinations if result.status in delivered]
