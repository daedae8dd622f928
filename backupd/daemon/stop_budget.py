"""One deadline for a whole stop, from daemon.stop_timeout: the runs and verifications being cancelled get
until its last share, which is kept for the hooks and pings of the runs that ended (or were abandoned)."""
from __future__ import annotations

import time
from dataclasses import dataclass

NOTIFY_DRAIN = 10.0     # seconds at the end of a stop kept for the notices, at most
NOTICE_SHARE = 0.5      # of a short stop_timeout, what the notices keep


@dataclass(frozen=True)
class StopBudget:
    ends: float             # monotonic: the stop is over by then
    work_ends: float        # monotonic: the runs and verifications being cancelled are waited for until then

    @classmethod
    def starting(cls, stop_timeout: float, now: float | None = None) -> "StopBudget":
        now = time.monotonic() if now is None else now
        notices = min(NOTIFY_DRAIN, stop_timeout * NOTICE_SHARE)
        return cls(ends=now + stop_timeout, work_ends=now + stop_timeout - notices)

    def for_work(self) -> float:
        """Seconds left for the runs and verifications to end."""
        return max(0.0, self.work_ends - time.monotonic())

    def left(self) -> float:
        """Seconds left of the whole stop."""
        return max(0.0, self.ends - time.monotonic())
