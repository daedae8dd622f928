"""The archivers compared on each dataset: each prepares a fresh output place (untimed) and names its command.

Every tool reads the same dataset with a warm page cache and writes into a folder created for that run
alone, so no timed section ever deletes and re-creates a tree.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import daemon_cmd
from .measure import BenchError, Invocation, tool_version

REPO_ROOT = daemon_cmd.REPO_ROOT
PASSWORD = "bench-only-password"


@dataclass(frozen=True)
class Runner:
    name: str
    missing: Callable[[], str | None]           # why the tool cannot run here, or None
    prepare: Callable[[Path, Path], Invocation]  # (dataset, fresh run folder) -> the timed command
    describe: Callable[[], str] = lambda: ""


def _tool_missing(tool: str) -> Callable[[], str | None]:
    return lambda: None if shutil.which(tool) else f"`{tool}` is not installed (apt-get install {tool})"


def _untimed(argv: list[str], env: dict, where: str) -> None:
    """Set-up step (repository init): not timed; fails with its stderr."""
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"{where}: {' '.join(argv[:3])} exited {done.returncode}: {done.stderr.strip()[-300:]}")


def _tar_zstd(data: Path, run: Path) -> Invocation:
    out = run / "out.tar.zst"
    script = 'set -o pipefail; tar -cf - . | zstd -3 -T0 -q > "$1"'
    return Invocation(["bash", "-c", script, "bench", str(out)], cwd=data, output=out)


def _python_tarfile(data: Path, run: Path) -> Invocation:
    out = run / "out.tar.zst"
    return Invocation([sys.executable, "-m", "bench.naive", str(data), str(out)], cwd=REPO_ROOT,
                      output=out, env=daemon_cmd.ENV)


def _restic(data: Path, run: Path) -> Invocation:
    repo = run / "repo"
    env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(run / "cache")}
    _untimed(["restic", "init", "--repository-version", "2", "--repo", str(repo)], env, "restic init")
    argv = ["restic", "--repo", str(repo), "backup", "--quiet", "--compression", "auto", "."]
    return Invocation(argv, cwd=data, output=repo, env=env)


def _borg(data: Path, run: Path) -> Invocation:
    repo = run / "repo"
    env = {"BORG_BASE_DIR": str(run / "home"), "BORG_PASSPHRASE": "",
           "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
    _untimed(["borg", "init", "--encryption", "none", str(repo)], env, "borg init")
    argv = ["borg", "create", "--compression", "zstd,3", f"{repo}::bench", "."]
    return Invocation(argv, cwd=data, output=repo, env=env)


def _backupd(data: Path, run: Path) -> Invocation:
    config = daemon_cmd.write_config(run, data)
    return Invocation(daemon_cmd.once_argv(config), cwd=run, output=run / "out", env=daemon_cmd.ENV)


RUNNERS = {runner.name: runner for runner in (
    Runner("tar|zstd", _tool_missing("zstd"), _tar_zstd, lambda: "tar -cf - . | zstd -3 -T0"),
    Runner("python-tarfile", lambda: None, _python_tarfile,
           lambda: "tarfile streaming into zstandard (level 3, threads=-1)"),
    Runner("restic", _tool_missing("restic"), _restic, lambda: "restic " + tool_version(["restic", "version"])),
    Runner("borg", _tool_missing("borg"), _borg, lambda: "borg " + tool_version(["borg", "--version"])),
    Runner("backupd", daemon_cmd.once_missing, _backupd,
           lambda: "backupd --config CFG --once JOB (one directory source, one local destination)"),
)}
BASELINE = "tar|zstd"
