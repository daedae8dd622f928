"""Kill a run at a precise point, as SIGKILL or a power cut would: the run goes on in a forked child that
kills itself right after a destination stored the archive."""
from __future__ import annotations

import os
import signal

from backupd.jobs.actions import store as store_action
from backupd.jobs.history import History
from backupd.jobs.result import new_run_id
from backupd.jobs.runner import Run


def killed_after_storing(config, stores: int = 1, job: str = "main") -> str:
    """Run `job` in a child process SIGKILLed once `stores` destinations stored its archive; the run's id."""
    run_id = new_run_id()
    pid = os.fork()
    if pid == 0:
        try:
            _die_after(stores)
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
