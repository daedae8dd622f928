"""What the stress tests observe of a daemon from outside: its processes and memory (/proc), its answers (the
control socket, through backupctl's own request code), its log (one JSON object a line), and small mounts."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
from pathlib import Path

import pytest

from backupd.daemon import protocol as proto


# -- /proc --------------------------------------------------------------------------------------------------------
def _status_field(pid: int, name: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    value = _status_field(pid, "VmHWM")
    assert value is not None, f"no VmHWM for process {pid}"
    return int(value.split()[0]) * 1024


def children(pid: int) -> dict[int, str]:
    """Every live descendant of `pid`: pid -> its command line."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status_field(int(entry), "PPid")
            if ppid is not None:
                parents[int(entry)] = int(ppid)
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        for child in frontier:
            found[child] = command_line(child)
    return {child: line for child, line in found.items() if line is not None}


def command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    state = _status_field(pid, "State")
    return state is not None and not state.startswith("Z")


def _link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:          # closed since the listing
        return None


def open_files(pid: int, below: Path) -> list[str]:
    """What the process holds open below the folder `below` (files already removed included)."""
    targets = (_link(entry) for entry in Path(f"/proc/{pid}/fd").iterdir())
    return [target for target in targets if target and target.startswith(f"{below}/")]


def kill_like_systemd(pid: int) -> dict[int, str]:
    """Freeze the daemon where it is, then SIGKILL it and every process it started (systemd's
    KillMode=control-group after a crash); the processes killed besides it."""
    os.kill(pid, signal.SIGSTOP)          # stopped at once: looking for its children takes a few ms
    descendants = children(pid)
    os.kill(pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    return descendants


# -- the control socket ---------------------------------------------------------------------------------------------
def call(socket_path: Path, command: str, timeout: float = 30.0, **args) -> dict:
    """One request on a fresh connection; its result (a `busy` answer is a RemoteError like any other)."""
    return proto.call(socket_path, command, args, timeout=timeout, connect_timeout=timeout)


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of `values`."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[98]


# -- the log --------------------------------------------------------------------------------------------------------
def non_json_lines(log_path: Path) -> list[str]:
    """The log's lines that are not one JSON object each (a traceback, a bare message), cut to 160 characters."""
    bad = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        bad.append(line[:160])
    return bad


# -- small file systems (root only) ---------------------------------------------------------------------------------
def mount_tmpfs(mount_point: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at mount_point; None on success, else why it could not be (not root, refused)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"cannot mount a tmpfs: {done.stderr.strip()}"


def unmount(mount_point: Path) -> None:
    subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str, why: str):
    """A tmpfs for the block's duration, or the test skipped naming `why` it was wanted (not root); in CI, which
    runs as root, a mount that fails fails the test."""
    refused = mount_tmpfs(mount_point, size)
    if refused is not None:
        message = f"{why}: {refused}"
        pytest.fail(message) if os.environ.get("CI") == "true" and os.geteuid() == 0 else pytest.skip(message)
    try:
        yield mount_point
    finally:
        unmount(mount_point)
