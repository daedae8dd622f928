"""`backupd`: the daemon's entry point, plus --check-config, --once and the destinations' set-up commands
(drive-login)."""
from __future__ import annotations

import argparse
import sys

from .. import __version__, config as config_module, logs
from ..destinations.commands import SETUP_COMMANDS, run_setup_command
from ..util.memory import keep_large_blocks_mapped


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backupd", description="Scheduled, verified backups; runs under systemd.")
    p.add_argument("--config", help="configuration file (default: $BACKUPD_CONFIG or /etc/backupd/backupd.toml)")
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    p.add_argument("--run-at-start", action="store_true", help="take one backup of every job right after start")
    p.add_argument("--once", metavar="JOB", help="run JOB once in the foreground, print its record, and exit")
    p.add_argument("--log-format", choices=("json", "text"), help="override daemon.log_format")
    p.add_argument("--version", action="version", version=f"backupd {__version__}")
    return p


def main(argv: list[str] | None = None, **daemon_parts) -> int:
    """The command line; `daemon_parts` go to the Daemon as they are (a caller's own trigger_for, for one)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SETUP_COMMANDS:      # a destination's set-up, e.g. drive-login
        return run_setup_command(argv[0], argv[1:])
    args = parser().parse_args(argv)
    path = args.config or config_module.default_path()
    if not args.check_config and not args.once:
        from ..daemon.systemd import Notifier
        Notifier().status(f"loading configuration {path}")
    try:
        config = config_module.load(path)
    except config_module.ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"backupd: {len(exc.errors)} error(s) in {exc.path}", file=sys.stderr)
        return 1
    if args.check_config:
        print(config.summary())
        return 0
    logs.setup(config.daemon.log_level, args.log_format or config.daemon.log_format)
    if args.once:
        return run_once(config, args.once)
    from ..daemon.lifecycle import Daemon
    keep_large_blocks_mapped()          # else each run's threads leave freed buffers resident in malloc's arenas
    daemon = Daemon(config, run_at_start=args.run_at_start, **daemon_parts)
    daemon.start()
    return daemon.serve()


def run_once(config, job_name: str) -> int:
    """One run exactly as the daemon would take it (same runner), without the socket or scheduler."""
    import json

    from ..jobs import notify
    from ..jobs.history import History
    from ..jobs.result import Status, Trigger
    from ..jobs.runner import Run
    if job_name not in config.jobs:
        print(f"backupd: no job named {job_name!r}; jobs: {', '.join(config.jobs)}", file=sys.stderr)
        return 2
    history = History(config.daemon.state_dir)
    record = Run(config=config, job=config.jobs[job_name], history=history, trigger=Trigger.MANUAL).execute()
    notify.drain(None)      # the run's hooks and pings, each bounded by its own timeout
    print(json.dumps(record.to_dict(), indent=2))
    return 0 if record.status == Status.SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
