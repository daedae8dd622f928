"""One deadline for a whole stop: the notices keep its last 10 s, or half of a shorter stop_timeout."""
from __future__ import annotations

import time

import pytest

from backupd.daemon.stop_budget import StopBudget


@pytest.mark.parametrize("stop_timeout, work, notices", [(30.0, 20.0, 10.0), (8.0, 4.0, 4.0), (1.0, 0.5, 0.5),
                                                        (0.0, 0.0, 0.0)])
def test_the_work_and_the_notices_share_stop_timeout(stop_timeout, work, notices):
    budget = StopBudget.starting(stop_timeout, now=100.0)
    assert (budget.work_ends - 100.0, budget.ends - budget.work_ends) == (work, notices)


def test_what_is_left_counts_down_and_never_below_zero():
    budget = StopBudget.starting(30.0)
    assert 19.0 < budget.for_work() <= 20.0 and 29.0 < budget.left() <= 30.0
    past = StopBudget.starting(30.0, now=time.monotonic() - 60.0)
    assert (past.for_work(), past.left()) == (0.0, 0.0)
