"""The shipped unit files, checked by systemd's own tools (no running systemd needed)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from backupd.daemon.listener import BACKLOG

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
SHIPPED_EXEC = "/usr/local/bin/backupd"
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")


def directives(unit: Path) -> dict[str, list[str]]:
    """'Section.Key' -> every value it is given (units may repeat a key)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith(("#", ";")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


@pytest.fixture
def units(tmp_path) -> Path:
    """The units with only ExecStart's program pointed at an executable that exists here."""
    program = tmp_path / "backupd"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    service = (PACKAGING / "backupd.service").read_text()
    assert service.count(f"ExecStart={SHIPPED_EXEC} ") == 1
    (tmp_path / "backupd.service").write_text(service.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={program} "))
    shutil.copy(PACKAGING / "backupd.socket", tmp_path / "backupd.socket")
    return tmp_path


def test_units_pass_systemd_analyze_verify(units):
    result = subprocess.run(
        ["systemd-analyze", "verify", "backupd.service", "backupd.socket"],
        cwd=units, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # no warnings either


def exposure(unit: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


def test_service_hardening_scores_at_most_2(units):
    score = exposure(units / "backupd.service")
    assert score <= MAX_EXPOSURE, f"systemd-analyze security scores backupd.service {score} > {MAX_EXPOSURE}"


def test_the_score_parser_sees_a_weak_unit(tmp_path):
    """The same measurement on an unhardened service must fail the threshold (the test above can fail)."""
    plain = tmp_path / "plain.service"
    plain.write_text("[Service]\nExecStart=/bin/true\n")
    assert exposure(plain) > 9.0


REQUIRED = {
    "Service.Type": "notify",
    "Service.NotifyAccess": "main",
    "Service.Restart": "on-failure",
    "Service.StateDirectory": "backupd",
    "Service.RuntimeDirectory": "backupd",
    "Service.RuntimeDirectoryPreserve": "yes",
    "Service.ExecReload": "/bin/kill -HUP $MAINPID",
    "Service.ExecStart": f"{SHIPPED_EXEC} --config /etc/backupd/backupd.toml",
    "Service.LoadCredential": "gdrive.json:/etc/backupd/gdrive.json",
    "Service.User": "backupd",
    "Service.AmbientCapabilities": "CAP_DAC_READ_SEARCH",
    "Service.CapabilityBoundingSet": "CAP_DAC_READ_SEARCH",
    "Service.ProtectSystem": "strict",
    "Unit.Requires": "backupd.socket",
}
SOCKET = {
    "Socket.ListenStream": "/run/backupd/backupd.sock",
    "Socket.SocketMode": "0660",
    "Socket.SocketGroup": "backupd",
    "Socket.Accept": "no",
}


@pytest.mark.parametrize("unit, expected", [("backupd.service", REQUIRED), ("backupd.socket", SOCKET)])
def test_unit_declares_the_protocol(unit, expected):
    found = directives(PACKAGING / unit)
    wrong = {key: found.get(key) for key, value in expected.items() if found.get(key) != [value]}
    assert wrong == {}


def test_socket_queues_as_many_connections_as_the_daemons_own_listener():
    assert directives(PACKAGING / "backupd.socket")["Socket.Backlog"] == [str(BACKLOG)]


def test_watchdog_is_longer_than_two_pings_and_stop_outlasts_stop_timeout():
    found = directives(PACKAGING / "backupd.service")
    assert found["Service.WatchdogSec"] == ["60s"]
    assert found["Service.TimeoutStopSec"] == ["60s"]  # daemon.stop_timeout defaults to 30s


def test_a_backup_yields_cpu_and_disk_to_the_application_and_the_score_stays_at_most_1_6(units):
    found = directives(PACKAGING / "backupd.service")
    assert {key: found.get(key) for key in ("Service.Nice", "Service.IOSchedulingClass",
                                           "Service.IOSchedulingPriority", "Service.CPUWeight")} == {
        "Service.Nice": ["10"], "Service.IOSchedulingClass": ["best-effort"],
        "Service.IOSchedulingPriority": ["7"], "Service.CPUWeight": ["20"]}
    assert exposure(units / "backupd.service") <= 1.6

@pytest.mark.skipif(not shutil.which("systemd-sysusers"), reason="systemd-sysusers not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: systemd-tmpfiles gives the directories to the backupd user")
def test_sysusers_and_tmpfiles_create_user_and_directories(tmp_path):
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(PACKAGING / "backupd.sysusers")],
                   check=True, capture_output=True, timeout=60)
    passwd = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    assert passwd["backupd"][5:] == ["/var/lib/backupd", "/usr/sbin/nologin"]
    uid, gid = int(passwd["backupd"][2]), int(passwd["backupd"][3])
    subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(PACKAGING / "backupd.tmpfiles")],
                   check=True, capture_output=True, timeout=60)
    modes = {
        path: (oct((tmp_path / path).stat().st_mode & 0o7777), (tmp_path / path).stat().st_uid,
               (tmp_path / path).stat().st_gid)
        for path in ("etc/backupd", "var/lib/backupd", "run/backupd")
    }
    assert modes == {
        "etc/backupd": ("0o750", 0, gid),
        "var/lib/backupd": ("0o700", uid, gid),
        "run/backupd": ("0o750", uid, gid),
    }
