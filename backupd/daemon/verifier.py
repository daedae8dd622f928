"""Scheduled verifications (a job's verify_schedule): each in a thread of its own, at most one per job at a
time, cancelled when the daemon stops and waited for within the stop's one deadline. Each one recorded
refreshes the metrics; a copy found damaged fires the job's on_failure and /fail (category verify)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..cancel import CancelToken
from ..jobs import notify
from ..jobs.verify_job import verify_job
from ..jobs.verify_record import VerifyRecord, VerifyStatus

log = logging.getLogger("backupd.verify")


def announce(records: list[VerifyRecord], config, on_change: Callable[[], None]) -> None:
    """Tell the watchers of recorded verifications: on_failure for each copy found damaged, then the metrics."""
    for record in records:
        if record.status == VerifyStatus.FAILED and record.job in config.jobs:
            notify.verification_failed(record, config.jobs[record.job])
    on_change()


class Verifications:
    def __init__(self, history, config_getter: Callable, on_change: Callable[[], None] = lambda: None) -> None:
        self._history, self._config, self._on_change = history, config_getter, on_change
        self._lock = threading.Lock()
        self._active: dict[str, tuple[threading.Thread, CancelToken]] = {}
        self._closed = False

    def start(self, job_name: str) -> bool:
        """Start verifying `job_name`; False if one is going already or the daemon is stopping."""
        with self._lock:
            if self._closed or job_name in self._active:
                log.info("verification not started: %s", "stopping" if self._closed else "one is in progress",
                         extra={"job": job_name})
                return False
            config, cancel = self._config(), CancelToken()
            if job_name not in config.jobs:
                return False
            thread = threading.Thread(target=self._run, args=(job_name, config, cancel), daemon=True,
                                      name=f"verify-{job_name}")
            self._active[job_name] = (thread, cancel)
            thread.start()
        return True

    def _run(self, job_name: str, config, cancel: CancelToken) -> None:
        records = []
        try:
            records = verify_job(job_name, config, self._history, cancel)
        except Exception:
            log.exception("scheduled verification failed", extra={"job": job_name})
        finally:
            with self._lock:
                self._active.pop(job_name, None)
            announce(records, config, self._on_change)

    def active(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def cancel(self) -> None:
        """Start none from now on; cancel the ones going."""
        with self._lock:
            self._closed = True
            active = list(self._active.values())
        for _, cancel in active:
            cancel.cancel("the daemon is stopping")

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s in all for the ones going to end; True if none is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [thread for thread, _ in self._active.values()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.active()
