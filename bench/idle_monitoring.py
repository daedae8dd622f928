"""The idle daemon's CPU with monitoring on: a metrics file and a job with alert_after (stale checks), over a
window that holds at least one periodic refresh (every CHECK_EVERY seconds).

    python -m bench.idle_monitoring [--seconds 330] [--work-dir DIR]     prints the figures as JSON
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import time
from pathlib import Path

from backupd.daemon.monitor import CHECK_EVERY
from tests import configs

from . import daemon_cmd
from .daemon_bench import proc_status, running_daemon
from .measure import REPO_ROOT

GOAL = 0.1      # CPU seconds per minute, the idle goal


def write_config(workdir: Path) -> Path:
    source = workdir / "empty-source"
    source.mkdir(parents=True, exist_ok=True)
    return configs.write_config(
        workdir, daemon={"socket": workdir / "backupd.sock", "log_level": "warning", "log_format": "text",
                         "metrics_file": workdir / "backupd.prom"},
        jobs={daemon_cmd.JOB: configs.job(["data"], ["out"], schedule=daemon_cmd.FAR_FUTURE, alert_after="26h")},
        sources={"data": configs.directory_source(source)},
        destinations={"out": configs.local_destination(workdir / "out")})


def measure(workdir: Path, window: float) -> dict:
    """CPU seconds of the started daemon over `window` s, per minute, and how often it rewrote its metrics."""
    workdir.mkdir(parents=True, exist_ok=True)
    metrics = workdir / "backupd.prom"
    with running_daemon(workdir, write_config(workdir)) as (proc, _):
        before, written = proc_status(proc.pid), set()
        end = time.monotonic() + window
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))   # the measurement window itself, sampled once a second
            if metrics.exists():
                written.add(metrics.stat().st_mtime_ns)
        after = proc_status(proc.pid)
    cpu = after["cpu"] - before["cpu"]
    return {"window_s": window, "cpu_window_s": cpu, "cpu_per_minute_s": cpu * 60.0 / window,
            "metrics_rewrites_seen": max(0, len(written) - 1), "rss_end": after["VmRSS"],
            "goal_cpu_per_minute_s": GOAL, "met": cpu * 60.0 / window <= GOAL}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=CHECK_EVERY + 30, help="the window (default: one refresh)")
    parser.add_argument("--work-dir", type=Path, default=Path(__file__).resolve().parent / "work")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)       # measured byte-compiled, as installed
    compileall.compile_dir(str(REPO_ROOT / "backupd"), quiet=1)
    print(json.dumps(measure(args.work_dir / time.strftime("idle-monitoring-%Y%m%d-%H%M%S"), args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
