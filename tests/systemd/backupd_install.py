"""Install backupd into a private systemd the way the README's install section does on a Debian server.

The one difference: ExecStart runs the project from this test run's virtualenv instead of /usr/local/bin; the unit
files are otherwise copied unchanged from packaging/.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from private_systemd import PrivateSystemd
from tests.configs import directory_source, job, local_destination, toml_text

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
VENV_BIN = Path(sys.prefix) / "bin"
SHIPPED_EXEC = "ExecStart=/usr/local/bin/backupd "
ARCHIVES = "/var/lib/backupd/archives"
SPOOL = "/var/lib/backupd/spool"
DATA = "/srv/data"


def config_text(schedule: str = "0 3 * * *", level: int = 3) -> str:
    """The installed configuration: the daemon's defaults (state, socket, group), one job on DATA."""
    return toml_text({"jobs": {"daily": job(["data"], schedule=schedule, compression_level=level, catch_up=False)},
                      "sources": {"data": directory_source(DATA)},
                      "destinations": {"local": local_destination(ARCHIVES)}})


def host_paths() -> tuple[str, ...]:
    """The project and its virtualenv, shown read-only inside (they may live on another mount than /)."""
    paths = [REPO, Path(sys.prefix).resolve()]
    return tuple(str(p) for p in paths if p == REPO or REPO not in p.parents)


def missing_installation() -> str | None:
    """Why this test run cannot install backupd into a private systemd, or None."""
    for script in ("backupd", "backupctl"):
        if not (VENV_BIN / script).exists():
            return f"the project is not installed in {sys.prefix} (no bin/{script}; run `pip install -e .`)"
    return None


class Backupd:
    """backupd installed in a booted private systemd, driven through systemctl and backupctl."""

    def __init__(self, system: PrivateSystemd):
        self.system = system

    def install(self, config: str) -> None:
        s = self.system
        service = (PACKAGING / "backupd.service").read_text()
        assert service.count(SHIPPED_EXEC) == 1, "ExecStart moved: update the test installation"
        s.install("/etc/systemd/system/backupd.service", service.replace(SHIPPED_EXEC, f"ExecStart={VENV_BIN}/backupd "))
        # the test installation's paths: a checkout under /tmp would be hidden by the unit's PrivateTmp=
        s.install("/etc/systemd/system/backupd.service.d/test-installation.conf",
                  "[Service]\nBindReadOnlyPaths=" + " ".join(host_paths()) + "\n")
        s.install("/etc/systemd/system/backupd.socket", (PACKAGING / "backupd.socket").read_text())
        s.install("/usr/lib/sysusers.d/backupd.conf", (PACKAGING / "backupd.sysusers").read_text())
        s.install("/usr/lib/tmpfiles.d/backupd.conf", (PACKAGING / "backupd.tmpfiles").read_text())
        s.run("systemd-sysusers", "backupd.conf")
        s.run("systemd-tmpfiles", "--create", "backupd.conf")
        self.write_config(config)
        self.make_installation_reachable()
        s.daemon_reload()

    def make_installation_reachable(self) -> None:
        """Let every user inside traverse to the venv's interpreter, the venv and the checkout.

        A test machine may keep them under a folder only root can enter (/root, a `mktemp -d` folder, mode 0700);
        the backupd user and the test's operators must still exec them. Only the overlay changes (the chmod lands
        in its tmpfs upper); on a server the interpreter is /usr/bin/python3 and the scripts are in /usr/local/bin.
        """
        binds = [Path(path) for path in host_paths()]
        targets = [Path(os.path.realpath(VENV_BIN / "python")), *binds]
        for folder in sorted({parent for target in targets for parent in target.parents}):
            if not any(folder == bind or bind in folder.parents for bind in binds):   # binds are read-only
                if not os.stat(folder).st_mode & 0o001:
                    self.system.run("chmod", "o+x", str(folder))

    def write_config(self, text: str) -> None:
        self.system.install("/etc/backupd/backupd.toml", text, 0o640)
        self.system.run("chgrp", "backupd", "/etc/backupd/backupd.toml")

    def add_data(self, name: str, content: bytes) -> None:
        self.system.install(f"{DATA}/{name}", content, 0o600)  # root's file: read through CAP_DAC_READ_SEARCH

    def ctl_argv(self, *args: str) -> tuple[str, ...]:
        return (str(VENV_BIN / "backupctl"), *args)

    def ctl(self, *args: str, check: bool = True, timeout: float = 60):
        return self.system.run(*self.ctl_argv(*args), check=check, timeout=timeout)

    def ctl_json(self, *args: str, timeout: float = 60) -> dict:
        return json.loads(self.ctl("--json", *args, timeout=timeout).stdout)

    def files(self, folder: str) -> list[str]:
        path = self.system.root / folder.lstrip("/")
        return sorted(p.name for p in path.iterdir()) if path.exists() else []

    def main_pid(self) -> int:
        return int(self.system.show("backupd", "MainPID"))

    def audit(self) -> list[dict]:
        """The daemon's JSON log lines from `journalctl -u backupd -o cat` (systemd's own lines are not JSON)."""
        lines = self.system.journal("backupd")
        return [json.loads(line) for line in lines if line.startswith("{")]
