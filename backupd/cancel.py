"""Cooperative cancellation: a run checks its token at safe points and stops cleanly."""
from __future__ import annotations

import threading


class Cancelled(Exception):
    """The run was asked to stop (daemon shutdown); it stopped at a safe point."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "daemon is stopping") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if the run should stop; call this between units of work."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking early on cancel; True if cancelled."""
        return self._event.wait(timeout)
