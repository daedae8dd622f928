"""Boot the real /lib/systemd/systemd as PID 1 of private namespaces, on an overlay of / that nothing escapes.

Recipe: unshare pid/mount/uts/ipc/net (propagation private) -> a fresh cgroup v2 group and a cgroup namespace ->
overlay root (lower /, tmpfs upper) with fresh proc, read-only /sys and /proc/sys, cgroup2, private /dev, /run,
/tmp and machine-id -> pivot_root -> exec systemd on a minimal target, with host units that start services masked.
Drive it with `nsenter -t PID -a ...`; stop it with SIGRTMIN+4; the cgroup is removed afterwards.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

from tests.waiting import wait_for

SYSTEMD = "/lib/systemd/systemd"
TARGET = "backupd-test.target"
DROPPED_CAPS = "-sys_module,-sys_time,-sys_rawio,-syslog,-wake_alarm,-mac_admin,-mac_override"
# Static host units a container boot has no business running (the host's own enabled units are masked too).
MASKED = (
    "systemd-modules-load.service", "systemd-sysctl.service", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount", "systemd-firstboot.service", "systemd-repart.service",
    "systemd-pcrphase.service", "systemd-pcrphase-sysinit.service", "systemd-random-seed.service",
    "systemd-journald-audit.socket", "systemd-tmpfiles-clean.timer", "dev-hugepages.mount", "dev-mqueue.mount",
    "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
)
TARGET_UNIT = "[Unit]\nDescription=backupd test system\nRequires=basic.target\nAfter=basic.target\nAllowIsolate=yes\n"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# Runs as PID 1 of the new PID namespace, in its private mount namespace. $1 workspace, $2 staged files,
# $3 console pty, $4 cgroup path, $5 hostname, $6.. binds (paths shown read-only at the same place).
BOOT_SCRIPT = r"""
set -eu
ws=$1 stage=$2 console=$3 cgroup=$4 name=$5; shift 5
mkdir "$cgroup"; echo 0 > "$cgroup/cgroup.procs"
mount -t tmpfs -o mode=700 ws "$ws"
mkdir "$ws/upper" "$ws/work" "$ws/root"
mount -t overlay -o "lowerdir=/,upperdir=$ws/upper,workdir=$ws/work" overlay "$ws/root"
r=$ws/root
cp -a "$stage/." "$r/"
mount -t proc proc "$r/proc"
mount --bind "$r/proc/sys" "$r/proc/sys"; mount -o remount,bind,ro "$r/proc/sys"
mount --bind /sys "$r/sys"; mount -o remount,bind,ro "$r/sys"
mount -t tmpfs -o mode=755 dev "$r/dev"
for d in DEVICES; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
touch "$r/dev/console"; mount --bind "$console" "$r/dev/console"
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$r/dev/pts"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
ln -s pts/ptmx "$r/dev/ptmx"; ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=755 run "$r/run"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
# binds last, so a checkout under /tmp or /run stays visible above the fresh tmpfs mounts
for bind in "$@"; do mkdir -p "$r$bind"; mount --bind "$bind" "$r$bind"; mount -o remount,bind,ro "$r$bind"; done
hostname "$name"
mkdir "$r/.old-root"
exec unshare --cgroup -- sh -c '
  set -eu; cd "$1"
  mount -t cgroup2 cgroup2 sys/fs/cgroup
  pivot_root . .old-root; cd /
  umount -l /.old-root; rmdir /.old-root
  mount --make-rshared /
  exec setpriv --bounding-set "$3" env -i container="$2" "$4" --system --unit="$5" --show-status=no
' boot "$r" "$name" "$DROPPED" "$SYSTEMD" "$TARGET"
""".replace("DEVICES", " ".join(DEVICES))


class BootError(RuntimeError):
    """systemd did not come up; the message carries its console output."""


class PrivateSystemd:
    """One booted private systemd. Use `with PrivateSystemd(workdir) as system:`."""

    def __init__(self, workdir: Path, binds: tuple[str, ...] = (), name: str | None = None):
        self.workdir = Path(workdir)
        self.name = name or f"backupd-test-{uuid.uuid4().hex[:8]}"
        self.binds = binds
        self.stage = self.workdir / "stage"
        self.cgroup = (CGROUP2 or Path("/sys/fs/cgroup")) / self.name
        self.pid: int | None = None
        self._unshare: subprocess.Popen | None = None
        self._console = bytearray()
        self._stage_base_files()

    # -- files before boot ---------------------------------------------------------------------------------------
    def stage_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Place a file in the system's root before it boots (it lands in the overlay's tmpfs upper)."""
        target = self.stage / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        target.chmod(mode)

    def _stage_base_files(self) -> None:
        self.stage_file("etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
        self.stage_file(f"etc/systemd/system/{TARGET}", TARGET_UNIT)
        for unit in MASKED + host_enabled_units():
            link = self.stage / "etc/systemd/system" / unit
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to("/dev/null")

    # -- boot and shutdown ---------------------------------------------------------------------------------------
    def boot(self, timeout: float = 30) -> None:
        """Start systemd and wait until `systemctl is-system-running` says running."""
        (self.workdir / "ns").mkdir(exist_ok=True)
        master, slave = os.openpty()
        argv = [
            "unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "--propagation", "private",
            "--kill-child", "sh", "-c", BOOT_SCRIPT, "boot", str(self.workdir / "ns"), str(self.stage),
            os.ttyname(slave), str(self.cgroup), self.name, *self.binds,
        ]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DROPPED": DROPPED_CAPS, "SYSTEMD": SYSTEMD, "TARGET": TARGET}
        self._unshare = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        threading.Thread(target=self._drain_console, args=(master,), daemon=True).start()
        self.pid = self._wait_for_pid1(timeout)
        state = self._wait_running(timeout)
        if state != "running":
            raise BootError(f"private systemd is {state!r}; failed units:\n{self.run('systemctl', '--failed', check=False)}")

    def _drain_console(self, master: int) -> None:
        """Keep reading the console pty so systemd never blocks on a full buffer."""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            self._console += data
        os.close(master)

    @property
    def console(self) -> str:
        return self._console.decode(errors="replace")

    def _wait_for_pid1(self, timeout: float) -> int:
        """The host pid of unshare's child once it has become systemd."""
        deadline = time.monotonic() + timeout
        children = Path(f"/proc/{self._unshare.pid}/task/{self._unshare.pid}/children")
        while time.monotonic() < deadline:
            if self._unshare.poll() is not None:
                raise BootError(f"boot script exited {self._unshare.returncode}:\n{self.console}")
            pids = children.read_text().split() if children.exists() else []
            if pids and _comm(pids[0]) == "systemd":
                return int(pids[0])
            time.sleep(0.01)
        raise BootError(f"systemd did not start within {timeout}s:\n{self.console}")

    def _wait_running(self, timeout: float) -> str:
        """Wait for the manager's private socket, then for the boot to finish; return the system state."""
        self.wait_for(lambda: (self.root / "run/systemd/private").exists(), "systemd's private socket", timeout)
        result = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
        return result.stdout.strip()

    def shutdown(self, timeout: float = 30) -> None:
        """Power off (SIGRTMIN+4), kill what remains, and remove the cgroup."""
        if self._unshare is None:
            return
        if self.pid is not None and self._unshare.poll() is None:
            os.kill(self.pid, signal.SIGRTMIN + 4)
        try:
            self._unshare.wait(timeout)
        except subprocess.TimeoutExpired:
            self._unshare.kill()  # --kill-child takes PID 1 and with it the whole namespace
            self._unshare.wait(10)
        self._unshare = None
        remove_cgroup(self.cgroup)

    def __enter__(self) -> "PrivateSystemd":
        try:
            self.boot()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- driving it --------------------------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 60, input: str | None = None):
        """Run a command inside every namespace of the system (as root, in its root filesystem)."""
        command = ["nsenter", "-t", str(self.pid), "-a", "--", *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def systemctl(self, *args: str, check: bool = True, timeout: float = 60):
        return self.run("systemctl", *args, check=check, timeout=timeout)

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", unit, "-p", prop, "--value").stdout.rstrip("\n")

    def journal(self, unit: str) -> list[str]:
        return self.run("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout.splitlines()

    @property
    def root(self) -> Path:
        """The system's root filesystem seen from the host (writable: the overlay's upper)."""
        return Path(f"/proc/{self.pid}/root")

    def install(self, path: str, content: str | bytes, mode: int = 0o644) -> Path:
        """Write a file into the running system; call daemon_reload() after adding units."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        target.chmod(mode)
        return target

    def daemon_reload(self) -> None:
        self.systemctl("daemon-reload")

    def wait_for(self, condition, what: str, timeout: float = 30, poll: float = 0.05):
        """Poll `condition()` until truthy and return it; fail naming `what` on timeout."""
        return wait_for(condition, what, timeout, poll)


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, *_ = line.split()
        if fstype == "cgroup2":
            return Path(mountpoint)
    return None


CGROUP2 = cgroup2_mount()


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def host_enabled_units() -> tuple[str, ...]:
    """Units the host's administrator enabled (they would start services: timers, databases, time sync)."""
    return tuple(sorted({link.name for link in Path("/etc/systemd/system").glob("*.wants/*")}))


def remove_cgroup(path: Path) -> None:
    """Remove a cgroup v2 tree bottom-up (rmdir only: cgroup files cannot be unlinked)."""
    if not path.exists():
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        sub.rmdir()
    path.rmdir()


def missing_requirements() -> str | None:
    """Why a private systemd cannot boot here, or None when it can."""
    cap_eff = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            cap_eff = int(line.split()[1], 16)
    checks = (
        (os.geteuid() == 0, "needs root"),
        (bool(cap_eff & (1 << 21)), "needs CAP_SYS_ADMIN (namespaces, mounts, pivot_root)"),
        (os.access(SYSTEMD, os.X_OK), f"needs systemd at {SYSTEMD}"),
        (CGROUP2 is not None, "needs a mounted cgroup v2 hierarchy"),
        (all(shutil.which(tool) for tool in ("unshare", "nsenter", "setpriv")), "needs util-linux unshare/nsenter"),
    )
    return next((reason for ok, reason in checks if not ok), None)


def require_private_systemd() -> None:
    """Skip (or, under CI=true, fail) when this machine cannot boot a private systemd."""
    import pytest

    reason = missing_requirements()
    if reason is None:
        return
    message = f"a real systemd as PID 1 of private namespaces {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run these tests")
    pytest.skip(message)
