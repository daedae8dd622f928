"""The one-line status systemd shows (STATUS=) and `backupctl status` repeats."""
from __future__ import annotations

from ..jobs.result import Status
from ..util.clock import iso
from ..util.units import human_size


def _running_text(run) -> str:
    progress = run.progress
    if progress.percent is not None:
        return f"{run.job.name}: {progress.stage} {progress.percent:.0f}%"
    return f"{run.job.name}: {progress.stage} {human_size(progress.done)}"


def _idle_text(daemon) -> str:
    upcoming = [(daemon.scheduler.next_run(name), name) for name in daemon.config.jobs]
    upcoming = [(when, name) for when, name in upcoming if when is not None]
    if not upcoming:
        return "idle; no job scheduled"
    when, name = min(upcoming)
    return f"idle; next run {name} at {iso(when)}"


def _last_failure(daemon) -> str:
    for name in daemon.config.jobs:
        last = daemon.history.last_run(name)
        if last and last.status == Status.FAILED and last.error:
            return f"; last run of {name} failed: {last.error.message}"[:200]
    return ""


def text(daemon) -> str:
    running = daemon.runs.all_active()
    main = "; ".join(_running_text(run) for run in running) if running else _idle_text(daemon)
    if daemon.reload_error:
        return f"{main}; {daemon.reload_error}"[:400]
    return main + ("" if running else _last_failure(daemon))
