"""Stand-in for `backupd --once JOB` until the daemon has it: one run through the daemon's own job runner."""
from __future__ import annotations

import sys

from backupd.config.load import load
from backupd.jobs.history import History
from backupd.jobs.runner import Run


def main(config_path: str, job_name: str) -> int:
    config = load(config_path)
    record = Run(config=config, job=config.jobs[job_name], history=History(config.daemon.state_dir),
                 trigger="bench").execute()
    if record.status != "success":
        print(f"run {record.status}: {record.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
