"""What a job tells the outside world: its hooks and its dead-man pings, at a run's start and end and when the
job goes stale.

The runner hands over a notice and goes on: each job's notices are delivered in order by a thread of their
own (a ping in parallel with the hook), so no run waits for a hook or a ping server, and a job's /start always
reaches the server before its end. drain() lets the daemon wait for what is left when it stops.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from ..config import JobConfig
from .outbound import ping, run_hook
from .result import Category, DestinationStatus, RunRecord, Status, Trigger

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

    @property
    def hook(self) -> tuple[str, ...] | None:
        return getattr(self.job, HOOK_OF[self.event])

    @property
    def log_extra(self) -> dict:
        return {"job": self.job.name, "run_id": self.env["BACKUPD_RUN_ID"] or None, "event": self.event}


def one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_MAX]


def environment(record: RunRecord, status: str | None = None) -> dict[str, str]:
    """The BACKUPD_* variables a hook gets (every one set; empty when it does not apply)."""
    error, archive = record.error, record.archive
    links = [d.link for d in record.destinations if d.link and d.status == DestinationStatus.SUCCESS]
    return {"BACKUPD_RUN_ID": record.run_id, "BACKUPD_JOB": record.job, "BACKUPD_STATUS": status or record.status,
            "BACKUPD_ERROR_CATEGORY": error.category if error else "",
            "BACKUPD_ERROR": one_line(error.message) if error else "",
            "BACKUPD_ARCHIVE": archive.name if archive else "", "BACKUPD_SIZE": str(archive.size) if archive else "",
            "BACKUPD_LINK": links[0] if links else ""}


def run_started(record: RunRecord, job: JobConfig) -> None:
    _send(Notice(Event.START, job, environment(record), ""))


def run_ended(record: RunRecord, job: JobConfig) -> None:
    """A run's end: on_success and <url> if it stored its backup everywhere, else on_failure and <url>/fail."""
    env = environment(record)
    if record.status == Status.SUCCESS:
        body = f"{env['BACKUPD_ARCHIVE']} ({env['BACKUPD_SIZE']} bytes) stored at {', '.join(job.destinations)}"
        _send(Notice(Event.SUCCESS, job, env, body))
    else:
        _send(Notice(Event.FAILURE, job, env, f"{record.status}: {env['BACKUPD_ERROR'] or 'no error recorded'}"))


def job_stale(job: JobConfig, message: str) -> None:
    """No run failed, but the job has not succeeded for longer than its alert_after."""
    record = RunRecord(run_id="", job=job.name, trigger=Trigger.SCHEDULE)
    record.fail(Category.STALE, message)
    env = environment(record, status="stale")
    _send(Notice(Event.FAILURE, job, env, f"stale: {env['BACKUPD_ERROR']}"))


# -- delivery: one lane of notices per job, each lane drained by one thread that ends when it is empty ----------
_lock = threading.Lock()
_emptied = threading.Condition(_lock)
_lanes: dict[str, deque[Notice]] = {}


def _send(notice: Notice) -> None:
    if notice.hook is None and notice.job.ping_url is None:
        return
    with _lock:
        lane = _lanes.setdefault(notice.job.name, deque())
        lane.append(notice)
        if len(lane) == 1:
            threading.Thread(target=_drain_lane, args=(notice.job.name,), name=f"notify-{notice.job.name}",
                             daemon=True).start()


def _drain_lane(job_name: str) -> None:
    while True:
        with _lock:
            notice = _lanes[job_name][0]
        try:
            deliver(notice)
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
                                  name=f"ping-{notice.job.name}")
        pinger.start()
    if notice.hook:
        run_hook(HOOK_OF[notice.event], notice.hook, notice.env, notice.job.hook_timeout, notice.log_extra)
    if pinger:
        pinger.join()


def drain(timeout: float) -> bool:
    """Wait up to `timeout` s for every notice to be delivered; True if none is left."""
    with _lock:
        return _emptied.wait_for(lambda: not _lanes, timeout)
