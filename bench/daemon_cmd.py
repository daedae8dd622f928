"""How the harness starts backupd: a generated configuration and the command lines of the daemon and backupctl."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from tests import configs

from .measure import REPO_ROOT

JOB = "bench"
FAR_FUTURE = "0 3 1 1 *"      # the idle daemon must not start a run while it is measured
BIN = Path(sys.executable).parent
ENV = {"PYTHONPATH": str(REPO_ROOT)}   # this checkout's backupd, whatever the virtualenv's install says


def write_config(workdir: Path, data: Path | None, **job_keys) -> Path:
    """Write a TOML configuration: one directory source on `data`, one local destination, all under `workdir`."""
    source = data if data is not None else workdir / "empty-source"
    source.mkdir(parents=True, exist_ok=True)
    return configs.write_config(
        workdir, daemon={"socket": workdir / "backupd.sock", "log_level": "warning", "log_format": "text"},
        jobs={JOB: configs.job(["data"], ["out"], schedule=FAR_FUTURE, **job_keys)},
        sources={"data": configs.directory_source(source)},
        destinations={"out": configs.local_destination(workdir / "out")})


def _script_or_module(script: str, module: str) -> list[str]:
    path = BIN / script
    return [str(path)] if path.exists() else [sys.executable, "-m", module]


def daemon_argv(config: Path) -> list[str]:
    return _script_or_module("backupd", "backupd.cli.daemon_main") + ["--config", str(config)]


def ctl_argv(socket: Path) -> list[str]:
    return _script_or_module("backupctl", "backupd.cli.ctl") + ["--socket", str(socket)]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


@lru_cache(maxsize=None)
def _daemon_help() -> str:
    if not _has_module("backupd.cli.daemon_main"):
        return ""
    done = subprocess.run(daemon_argv(Path("/dev/null"))[:-2] + ["--help"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **ENV})
    return done.stdout if done.returncode == 0 else ""


def daemon_missing() -> str | None:
    """Why the daemon cannot be benchmarked yet, or None."""
    return None if _daemon_help() else "backupd.cli.daemon_main is not there yet (or --help fails)"


def ctl_missing() -> str | None:
    return None if _has_module("backupd.cli.ctl") else "backupd.cli.ctl (backupctl) is not there yet"


def once_argv(config: Path) -> list[str]:
    """The command that runs the job once as a scheduled run would, then exits."""
    return daemon_argv(config) + ["--once", JOB]


def once_missing() -> str | None:
    return None if "--once" in _daemon_help() else "backupd has no --once mode yet (or --help fails)"
