"""A destination's bandwidth limit: a token bucket that the upload and download chunk loops ask before each
chunk. It only computes how long to wait (the caller waits, waking early on cancel), so it is tested with
an injected clock and no sleeping."""
from __future__ import annotations

import time
from typing import Callable


class TokenBucket:
    """At most `rate` bytes a second on average; up to `burst` bytes saved up while idle go at once.

    A chunk larger than what the bucket holds is let through after a wait that pays for it in full (the
    bucket goes into debt), so the long-run rate is exactly `rate` whatever the chunk size."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.clock = clock
        self._tokens = 0.0           # starts empty: the first chunk is paced like every other
        self._stamp = clock()

    def reserve(self, amount: int) -> float:
        """Take `amount` bytes' worth of tokens; the seconds to wait before sending them (0.0: send now)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= amount
        return -self._tokens / self.rate if self._tokens < 0 else 0.0


def pace(bucket: TokenBucket | None, amount: int, cancel=None) -> None:
    """Wait until `amount` bytes may be sent under `bucket` (none: at once); a cancel ends the wait and raises."""
    if bucket is None or amount <= 0:
        return
    delay = bucket.reserve(amount)
    if delay <= 0:
        return
    if cancel is None:
        time.sleep(delay)
    elif cancel.wait(delay):
        cancel.check()
