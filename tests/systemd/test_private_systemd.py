"""The harness itself, proven with a trivial Type=notify unit: readiness, STATUS=, watchdog restart, journal."""
from __future__ import annotations

import sys
from pathlib import Path

from private_systemd import PrivateSystemd, require_private_systemd

NOTIFY_PY = r'''
import os, signal, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
addr = "\0" + addr[1:] if addr.startswith("@") else addr
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def notify(text):
    sock.sendto(text.encode(), addr)
print("trivial starting", flush=True)
notify("STATUS=warming up")
notify("READY=1\nSTATUS=idle, ping " + sys.argv[1])
interval = int(os.environ.get("WATCHDOG_USEC", "0")) / 2e6
while True:
    if interval:
        notify("WATCHDOG=1")
    time.sleep(interval or 3600)
'''

UNIT = """[Unit]
Description=trivial notify unit

[Service]
Type=notify
NotifyAccess=main
ExecStart={python} /opt/trivial/notify.py {arg}
Restart=on-failure
RestartSec=100ms
{extra}
"""


def install_trivial(system, arg: str = "ok", extra: str = "") -> None:
    system.install("/opt/trivial/notify.py", NOTIFY_PY)
    system.install("/etc/systemd/system/trivial.service", UNIT.format(python=sys.executable, arg=arg, extra=extra))
    system.daemon_reload()


def test_boot_is_isolated_from_the_host(private_systemd):
    assert private_systemd.run("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert private_systemd.systemctl("is-system-running").stdout.strip() == "running"
    private_systemd.install("/etc/written-inside", "x")
    assert not Path("/etc/written-inside").exists()
    assert private_systemd.cgroup.is_dir()


def test_cgroup_is_removed_after_shutdown(tmp_path):
    require_private_systemd()
    with PrivateSystemd(tmp_path) as system:
        cgroup = system.cgroup
        assert (cgroup / "init.scope").is_dir()
    assert not cgroup.exists()


def test_notify_unit_reaches_ready_with_status(private_systemd):
    install_trivial(private_systemd, arg="42")
    private_systemd.systemctl("start", "trivial")  # returns only after READY=1 for Type=notify
    assert private_systemd.show("trivial", "ActiveState") == "active"
    assert private_systemd.show("trivial", "StatusText") == "idle, ping 42"
    assert "trivial starting" in private_systemd.journal("trivial")


def test_frozen_unit_is_restarted_by_the_watchdog(private_systemd):
    install_trivial(private_systemd, extra="WatchdogSec=1")
    private_systemd.systemctl("start", "trivial")
    pid = int(private_systemd.show("trivial", "MainPID"))
    private_systemd.run("kill", "-STOP", str(pid))
    restarted = private_systemd.wait_for(
        lambda: private_systemd.show("trivial", "NRestarts") == "1"
        and private_systemd.show("trivial", "ActiveState") == "active",
        "the watchdog restart", timeout=15,
    )
    assert restarted
    assert int(private_systemd.show("trivial", "MainPID")) != pid
    manager_log = private_systemd.run("journalctl", "-u", "trivial", "--no-pager").stdout
    assert "trivial.service: Watchdog timeout" in manager_log
