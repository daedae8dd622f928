"""Kill a run at a precise point, as SIGKILL or a power cut would: the run goes on in a forked child that
kills itself right after a destination stored the archive, or as it starts pruning."""
from __future__ import annotations

import os
import signal

from backupd.jobs import runner
from backupd.jobs.actions import store as store_action
from backupd.jobs.history import History
from backupd.jobs.result import new_run_id
from backupd.jobs.runner import Run


def killed_after_storing(config, stores: int = 1, job: str = "main") -> str:
    """Run `job` in a child process SIGKILLed once `stores` destinations stored its archive; the run's id."""
    return _killed_in_child(config, job, lambda: _die_after(stores))


def killed_while_pruning(config, job: str = "main") -> str:
    """Run `job` in a child process SIGKILLed as it starts pruning (stored everywhere, its spool copy dropped);
    the run's id."""
    return _killed_in_child(config, job, _die_at_prune)


def _killed_in_child(config, job: str, arm) -> str:
    run_id = new_run_id()
    pid = os.fork()
    if pid == 0:
        try:
            arm()
            Run(config=config, job=config.jobs[job], history=History(config.daemon.state_dir),
                run_id=run_id).execute()
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the run was not killed"
    return run_id


def _die_after(stores: int) -> None:
    """In the child only: the real store_one, then SIGKILL after the `stores`-th success."""
    real, done = store_action.store_one, []

    def store_then_die(*args):
        stored = real(*args)
        done.append(stored)
        if sum(done) >= stores:
            os.kill(os.getpid(), signal.SIGKILL)
        return stored
    store_action.store_one = store_then_die


def _die_at_prune() -> None:
    """In the child only: SIGKILL where the run's prune step begins."""
    runner.prune_after_run = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
