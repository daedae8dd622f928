"""Waiting in tests: poll a condition until it holds or a deadline passes; never a bare sleep."""
from __future__ import annotations

import time


def wait_for(condition, what: str = "condition", timeout: float = 30.0, interval: float = 0.05):
    """Poll `condition()` until it returns a truthy value and return that; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
