"""Exponential backoff with jitter, bounded by a deadline that restarts after every success."""
from __future__ import annotations

import logging
import random
import time

from ..base import DestinationError

log = logging.getLogger("backupd.destinations.gdrive")


class Backoff:
    """Call failed(why) after each transient fault: it sleeps, or gives up once `deadline` seconds have
    passed since the first fault of the current streak; succeeded() ends the streak."""

    def __init__(self, where: str, deadline: float, base: float = 1.0, cap: float = 32.0,
                 cancel=None, clock=time.monotonic):
        self.where, self.deadline, self.base, self.cap = where, deadline, base, cap
        self.cancel, self.clock = cancel, clock
        self.attempt = 0
        self.since: float | None = None
        self.faults = 0          # every transient fault seen (for tests and logs)

    def failed(self, why: str, sleep: bool = True) -> None:
        now = self.clock()
        self.faults += 1
        if self.since is None:
            self.since = now
        waited = now - self.since
        if waited >= self.deadline:
            raise DestinationError(f"{self.where}: Drive unreachable for {waited:.0f}s (last: {why}); "
                                   "the upload is retried at the next run", kind="network", permanent=False)
        delay = min(self.cap, self.base * 2 ** self.attempt)
        delay = min(delay / 2 + random.uniform(0, delay / 2), self.deadline - waited)
        self.attempt += 1
        log.warning("%s: transient Drive fault (%s); retry %d in %.2fs", self.where, why, self.attempt,
                    delay if sleep else 0.0)
        if sleep:
            self._sleep(delay)

    def _sleep(self, delay: float) -> None:
        if self.cancel is None:
            time.sleep(delay)
        elif self.cancel.wait(delay):
            self.cancel.check()

    def succeeded(self) -> None:
        self.attempt = 0
        self.since = None
