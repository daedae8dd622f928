"""Start the real backupd with parts that only tests give it, each named by an option.

    python tests/e2e/launch_daemon.py [--fire-every SECONDS] [--verify-every SECONDS] [--stall-while FILE] \
        [--term-grace SECONDS] -- BACKUPD_ARGS...

After `--` comes backupd's own command line: the daemon is built and run by backupd's own entry point, with
the parts chosen here handed to it in place of the product's (nothing in the product reads them from the
configuration or the environment).
"""
from __future__ import annotations

import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.interval import IntervalTrigger

from backupd.cli import daemon_main
from backupd.daemon.lifecycle import DEFAULT_HEALTH_PROBES

USAGE = ("usage: launch_daemon.py [--fire-every SECONDS] [--verify-every SECONDS] [--stall-while FILE] "
         "[--term-grace SECONDS] -- BACKUPD_ARGS...")


def fire_every(seconds: str) -> dict:
    """Every job fires every SECONDS s, the first time SECONDS after start, through the real APScheduler."""
    period = int(seconds)
    return {"trigger_for": lambda job: IntervalTrigger(seconds=period, timezone=ZoneInfo(job.timezone))}


def verify_every(seconds: str) -> dict:
    """Every job with a verify_schedule verifies every SECONDS s instead, through the real APScheduler."""
    period = int(seconds)
    return {"verify_trigger_for": lambda job: IntervalTrigger(seconds=period, timezone=ZoneInfo(job.timezone))}


def stall_while(path: str) -> dict:
    """The daemon's own health probes plus one that fails while FILE exists: the daemon looks stuck to its watchdog."""
    stall_file = Path(path)
    return {"health_probes": (*DEFAULT_HEALTH_PROBES, lambda daemon: not stall_file.exists())}


def term_grace(seconds: str) -> dict:
    """Sources' children get SECONDS (not the product's 5 s) between SIGTERM and SIGKILL: a test that needs a
    child outliving a stop's share for runs does not race that grace on a loaded machine."""
    from backupd.sources import process
    process.TERM_GRACE = float(seconds)
    return {}


# option -> function(its value) -> keyword arguments for the Daemon
PARTS = {"--fire-every": fire_every, "--verify-every": verify_every, "--stall-while": stall_while,
         "--term-grace": term_grace}


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """(the Daemon's keyword arguments, backupd's argv); SystemExit with the usage on a mistake."""
    if "--" not in argv:
        raise SystemExit(USAGE)
    ours, backupd_argv = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    if len(ours) % 2 or any(name not in PARTS for name in ours[::2]):
        raise SystemExit(f"{USAGE}\nlaunch_daemon.py: options come in pairs, among {', '.join(PARTS)}")
    parts: dict = {}
    for name, value in zip(ours[::2], ours[1::2]):
        parts.update(PARTS[name](value))
    return parts, backupd_argv


def main(argv: list[str]) -> int:
    parts, backupd_argv = parse(argv)
    return daemon_main.main(backupd_argv, **parts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
