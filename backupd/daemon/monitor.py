"""Keeps what watchers read current: the stale checks (alert_after) and the metrics file.

A refresh runs at start, after every run, prune, verification and reload (whoever changed something calls
changed()), and every CHECK_EVERY seconds from the scheduler. It runs in a thread of its own, so no run or
command waits for it; requests that come while it runs are folded into one more refresh. A refresh that fails
is logged, never raised.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from ..config import Config
from ..jobs.freshness import check_stale
from ..jobs.history import History
from . import metrics

log = logging.getLogger("backupd.monitor")
CHECK_EVERY = 300.0         # seconds between two refreshes of an idle daemon: a few minutes, not a busy loop


class Monitor:
    def __init__(self, config: Callable[[], Config], history: History, next_run) -> None:
        self._config, self._history, self._next_run = config, history, next_run
        self._wanted = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._failing: set[str] = set()     # what failed at the last refresh: logged again only once it recovered

    def start(self) -> None:
        self._wanted.set()
        self._thread.start()

    def changed(self) -> None:
        """Something watchers see has changed (a run ended, a prune, a reload): refresh soon, off this thread."""
        self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._closed:
                return
            self._wanted.clear()
            self.refresh()

    def refresh(self) -> None:
        """The stale checks, then the metrics file; each failure logged."""
        config = self._config()
        self._attempt("stale check", lambda: check_stale(config, self._history))
        path = config.daemon.metrics_file
        if path is not None:
            state = metrics.State(config=config, history=self._history, next_run=self._next_run)
            self._attempt("metrics file", lambda: metrics.write(path, state), path=str(path))

    def _attempt(self, what: str, action: Callable[[], object], **extra) -> None:
        try:
            action()
        except OSError as exc:
            self._failed(what, {**extra, "error": exc.strerror or str(exc)})
        except Exception:           # a bug in a refresh must not stop the next ones
            log.exception(f"{what} crashed", extra=extra)
        else:
            if what in self._failing:
                self._failing.discard(what)
                log.info(f"{what} works again", extra=extra)

    def _failed(self, what: str, extra: dict) -> None:
        if what not in self._failing:
            self._failing.add(what)
            log.error(f"{what} failed; tried again at the next refresh", extra=extra)

    def stop(self, timeout: float = 5.0) -> None:
        self._closed = True
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
