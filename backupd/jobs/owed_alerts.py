"""The failure alerts of runs that ended without sending their own: a run the daemon abandoned at a stop (it
did not reach a safe point within stop_timeout) and a run a killed daemon left running (marked interrupted at
the next start). The history keeps each one owed until its on_failure and /fail were delivered, so each goes
out exactly once: at the stop if it fits in what is left of the stop, else at the next start."""
from __future__ import annotations

import logging
import time

from ..config import Config
from . import notify
from .history import History
from .result import Status

log = logging.getLogger("backupd.notify")


def send_owed(config: Config, history: History) -> list[str]:
    """At start: send every owed alert, each marked delivered once done; the run ids settled."""
    return [run_id for run_id in history.owed_alerts() if _send(config, history, run_id)]


def send_at_stop(config: Config, history: History, run_ids: list[str], deadline: float) -> list[str]:
    """The alerts of the runs just abandoned, each only if it can be delivered before `deadline` (monotonic);
    the others wait for the next start. The run ids settled."""
    sent = []
    for run_id in run_ids:
        if _send(config, history, run_id, budget=deadline - time.monotonic()):
            sent.append(run_id)
        else:
            log.warning("failure alert of an abandoned run left for the next start: it would not be delivered "
                        "before the daemon exits", extra={"run_id": run_id})
    return sent


def _send(config: Config, history: History, run_id: str, budget: float | None = None) -> bool:
    """Send the alert of `run_id` (within `budget` s if given); False if it did not fit and is still owed."""
    record = history.get(run_id)
    job = config.jobs.get(record.job) if record is not None else None
    if job is None or record.status == Status.SUCCESS:      # nobody to tell (job gone), or nothing failed
        history.alert_delivered(run_id)
        return True

    def delivered() -> None:
        history.alert_delivered(run_id)
        log.info("failure alert of an interrupted run delivered", extra={"run_id": run_id, "job": job.name})

    return notify.run_owed(record, job, delivered, budget=budget)
