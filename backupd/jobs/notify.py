"""What a job tells the outside world: its hooks and its dead-man pings, at a run's start and end and when the
job goes stale.

The runner hands over a notice and goes on: each job's notices are delivered in order by a thread of their
own (a ping in parallel with the hook), so no run waits for a hook or a ping server, and a job's /start always
reaches the server before its end. drain() lets the daemon wait for what is left when it stops.

A run that ended without its own notice (abandoned at a stop, left running by a killed daemon) owes its
on_failure and /fail: run_owed() sends it and reports its delivery, so the history sends each only once.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from ..config import JobConfig
from .outbound import OUTPUT_GRACE, PING_BUDGET, ping, run_hook
from .result import ArchiveInfo, Category, DestinationStatus, RunRecord, Status, Trigger
from .verify_record import VerifyRecord

log = logging.getLogger("backupd.notify")
ERROR_MAX = 500             # characters of an error message handed to a hook or a ping


class Event(StrEnum):
    START = "start"
    SUCCESS = "success"
    FAILURE = "failure"


HOOK_OF = {Event.START: "on_start", Event.SUCCESS: "on_success", Event.FAILURE: "on_failure"}
PING_SUFFIX = {Event.START: "/start", Event.SUCCESS: "", Event.FAILURE: "/fail"}


@dataclass(frozen=True)
class Notice:
    """One event of one job: the hook's environment and the ping's body, taken when it happened."""

    event: Event
    job: JobConfig
    env: dict[str, str]
    body: str
    ping_budget: float = PING_BUDGET                    # seconds the ping's attempts may take in all
    on_delivered: Callable[[], None] | None = None      # called once the hook and the ping are done

    @property
    def hook(self) -> tuple[str, ...] | None:
        return getattr(self.job, HOOK_OF[self.event])

    @property
    def log_extra(self) -> dict:
        return {"job": self.job.name, "run_id": self.env["BACKUPD_RUN_ID"] or None, "event": self.event}


def one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_MAX]


def environment(record: RunRecord, status: str | None = None, trigger: str | None = None) -> dict[str, str]:
    """The BACKUPD_* variables a hook gets (every one set; empty when it does not apply). BACKUPD_TRIGGER:
    `trigger` if given (upload-pending; "" for a stale job), else what started the run."""
    error, archive = record.error, record.archive
    links = [d.link for d in record.destinations if d.link and d.status == DestinationStatus.SUCCESS]
    return {"BACKUPD_RUN_ID": record.run_id, "BACKUPD_JOB": record.job, "BACKUPD_STATUS": status or record.status,
            "BACKUPD_TRIGGER": record.trigger if trigger is None else trigger,
            "BACKUPD_ERROR_CATEGORY": error.category if error else "",
            "BACKUPD_ERROR": one_line(error.message) if error else "",
            "BACKUPD_ARCHIVE": archive.name if archive else "", "BACKUPD_SIZE": str(archive.size) if archive else "",
            "BACKUPD_LINK": links[0] if links else ""}


def run_started(record: RunRecord, job: JobConfig, trigger: str | None = None) -> None:
    _send(Notice(Event.START, job, environment(record, trigger=trigger), ""))


def run_ended(record: RunRecord, job: JobConfig, trigger: str | None = None) -> None:
    """A run's end: on_success and <url> if it stored its backup everywhere, else on_failure and <url>/fail."""
    if record.status != Status.SUCCESS:
        _send(failure_notice(record, job, trigger))
        return
    env = environment(record, trigger=trigger)
    if record.archive:
        body = f"{env['BACKUPD_ARCHIVE']} ({env['BACKUPD_SIZE']} bytes) stored at {', '.join(job.destinations)}"
    else:       # trigger --upload-pending: no archive of its own
        body = "uploaded: " + (", ".join(d.name for d in record.destinations) or "nothing was pending")
    _send(Notice(Event.SUCCESS, job, env, body))


def failure_notice(record: RunRecord, job: JobConfig, trigger: str | None = None, **delivery) -> Notice:
    env = environment(record, trigger=trigger)
    return Notice(Event.FAILURE, job, env, f"{record.status}: {env['BACKUPD_ERROR'] or 'no error recorded'}",
                  **delivery)


def run_owed(record: RunRecord, job: JobConfig, on_delivered: Callable[[], None],
             budget: float | None = None) -> bool:
    """on_failure and /fail for a run that ended without its own; `on_delivered` once both are done. With a
    `budget` (s), only if the delivery surely ends within it: the job's lane idle and its hook's timeout
    within it (the ping gets what is left). False: nothing was sent."""
    if budget is not None and not fits(job, budget):
        return False
    delivery = {"on_delivered": on_delivered}
    if budget is not None:
        delivery["ping_budget"] = min(PING_BUDGET, budget)
    return _send(failure_notice(record, job, **delivery), only_if_idle=budget is not None)


def fits(job: JobConfig, budget: float) -> bool:
    """Whether a failure notice of `job` can be delivered within `budget` s (its hook and output tail)."""
    return budget > 0 and (not job.on_failure or job.hook_timeout + OUTPUT_GRACE <= budget)


def job_stale(job: JobConfig, message: str) -> None:
    """No run failed, but the job has not succeeded for longer than its alert_after."""
    record = RunRecord(run_id="", job=job.name, trigger=Trigger.SCHEDULE)
    record.fail(Category.STALE, message)
    env = environment(record, status="stale", trigger="")
    _send(Notice(Event.FAILURE, job, env, f"stale: {env['BACKUPD_ERROR']}"))


def verification_failed(verified: VerifyRecord, job: JobConfig) -> None:
    """A verification found the stored copy of a backup damaged: on_failure and /fail, category 'verify'."""
    more = f" (and {verified.problem_count - 1} more problems)" if verified.problem_count > 1 else ""
    first = verified.problems[0] if verified.problems else "no problem recorded"
    record = RunRecord(run_id=verified.run_id, job=job.name, trigger=Trigger.SCHEDULE,
                       archive=ArchiveInfo(name=verified.archive, size=verified.bytes, sha256=verified.sha256))
    record.fail(Category.VERIFY, f"verification of {verified.archive} at destination '{verified.destination}' "
                                 f"failed: {first}{more}")
    _send(failure_notice(record, job, trigger=verified.trigger))


# -- delivery: one lane of notices per job, each lane drained by one thread that ends when it is empty ----------
_lock = threading.Lock()
_emptied = threading.Condition(_lock)
_lanes: dict[str, deque[Notice]] = {}


def _send(notice: Notice, only_if_idle: bool = False) -> bool:
    """Queue `notice` on its job's lane (only_if_idle: only if that lane is empty); False if not queued."""
    if notice.hook is None and notice.job.ping_url is None:
        if notice.on_delivered:
            notice.on_delivered()           # nothing to send: delivered as it stands
        return True
    with _lock:
        if only_if_idle and notice.job.name in _lanes:
            return False
        lane = _lanes.setdefault(notice.job.name, deque())
        lane.append(notice)
        if len(lane) == 1:
            threading.Thread(target=_drain_lane, args=(notice.job.name,), name=f"notify-{notice.job.name}",
                             daemon=True).start()
    return True


def _drain_lane(job_name: str) -> None:
    while True:
        with _lock:
            notice = _lanes[job_name][0]
        try:
            deliver(notice)
            if notice.on_delivered:
                notice.on_delivered()
        except Exception:   # a bug here must not stop the lane (later notices would wait forever)
            log.exception("notification failed", extra=notice.log_extra)
        with _lock:
            lane = _lanes[job_name]
            lane.popleft()
            if not lane:
                del _lanes[job_name]
                _emptied.notify_all()
                return


def deliver(notice: Notice) -> None:
    """The hook and the ping of one notice, side by side; returns when both are done."""
    pinger = None
    if notice.job.ping_url:
        url = notice.job.ping_url.rstrip("/") + PING_SUFFIX[notice.event]
        pinger = threading.Thread(target=ping, args=(url, notice.body, notice.log_extra), daemon=True,
                                  kwargs={"budget": notice.ping_budget}, name=f"ping-{notice.job.name}")
        pinger.start()
    if notice.hook:
        run_hook(HOOK_OF[notice.event], notice.hook, notice.env, notice.job.hook_timeout, notice.log_extra)
    if pinger:
        pinger.join()


def drain(timeout: float) -> bool:
    """Wait up to `timeout` s for every notice to be delivered; True if none is left."""
    with _lock:
        return _emptied.wait_for(lambda: not _lanes, timeout)
