"""Active runs: at most one per job, each in its own thread, cancellable at shutdown."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..jobs.result import Trigger
from ..jobs.runner import Action, Run

log = logging.getLogger("backupd.runs")


class Busy(Exception):
    """The daemon is stopping and starts no new run."""


class RunManager:
    def __init__(self, history, config_getter: Callable, on_change: Callable[[], None]):
        self._history = history
        self._config = config_getter
        self._on_change = on_change
        self._lock = threading.Lock()
        self._active: dict[str, tuple[Run, threading.Thread]] = {}
        self._finished = threading.Condition(self._lock)
        self._closed = False

    def start(self, job_name: str, trigger: Trigger, action: Action = Action.BACKUP,
              full: bool = False) -> tuple[Run, bool]:
        """Start a run of `job_name` (`full`: a differential job makes a new full), or return the one already
        going, whatever it was asked for: (run, started)."""
        with self._lock:
            if self._closed:
                raise Busy("the daemon is stopping; no new runs are started")
            if job_name in self._active:
                run = self._active[job_name][0]
                log.info("run already in progress", extra={"job": job_name, "run_id": run.run_id,
                                                           "trigger": trigger, "full": run.full})
                return run, False
            config = self._config()
            run = Run(config=config, job=config.jobs[job_name], history=self._history, trigger=Trigger(trigger),
                      action=action, full=full)
            thread = threading.Thread(target=self._execute, args=(run,), name=f"run-{job_name}", daemon=True)
            self._active[job_name] = (run, thread)
            thread.start()
        self._on_change()
        return run, True

    def _execute(self, run: Run) -> None:
        try:
            run.execute()
        finally:
            with self._lock:
                self._active.pop(run.job.name, None)
                self._finished.notify_all()
            self._on_change()

    def active(self, job_name: str) -> Run | None:
        with self._lock:
            entry = self._active.get(job_name)
            return entry[0] if entry else None

    def all_active(self) -> list[Run]:
        with self._lock:
            return [run for run, _ in self._active.values()]

    def wait(self, run: Run, timeout: float | None = None) -> bool:
        """Block until `run` has finished; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._active.get(run.job.name, (None,))[0] is run:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._finished.wait(remaining)
        return True

    def stop(self, timeout: float) -> bool:
        """Refuse new runs, cancel the active ones, wait up to `timeout`; True if all ended."""
        with self._lock:
            self._closed = True
            runs = [run for run, _ in self._active.values()]
        for run in runs:
            run.cancel.cancel("the daemon is stopping")
        deadline = time.monotonic() + timeout
        return all(self.wait(run, max(0.0, deadline - time.monotonic())) for run in runs)
