"""Start the real `backupd` on a temporary config and drive it with the real `backupctl`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.waiting import wait_for

BIN = Path(sys.executable).parent
LAUNCHER = Path(__file__).with_name("launch_daemon.py")


class NotifyReceiver:
    """A test-owned NOTIFY_SOCKET: collects the daemon's sd_notify datagrams."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict]] = []

    def drain(self) -> list[tuple[float, dict]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait(self, key: str, value: str | None = None, timeout: float = 30.0) -> dict:
        def found():
            for _, fields in self.drain():
                if key in fields and (value is None or fields[key] == value):
                    return fields
            return None
        return wait_for(found, timeout=timeout, what=f"{key}={value or '*'} from the daemon")

    def fill(self) -> int:
        """Queue datagrams until the socket takes no more, as when systemd is behind on reading: a sender that
        waits for room now waits until drain(). Returns how many were queued."""
        fillers: list[socket.socket] = []
        queued = 0
        try:
            while True:
                fillers.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
                sent = _send_until_refused(fillers[-1], self.path)
                if sent == 0:           # a fresh sender gets no room: the queue itself is full
                    return queued
                queued += sent
        finally:
            for filler in fillers:
                filler.close()

    def close(self) -> None:
        self.sock.close()


def _send_until_refused(sender: socket.socket, path: Path) -> int:
    """How many datagrams `sender` queues at `path` before there is no room (in its own buffer or the queue)."""
    sender.setblocking(False)
    sender.connect(str(path))
    sent = 0
    try:
        while True:
            sender.send(b"FILLER=1")
            sent += 1
    except BlockingIOError:
        return sent


class Daemon:
    """backupd on the configuration file `config`; `launch` options start it through launch_daemon.py."""

    def __init__(self, tmp_path: Path, config: Path, extra_env: dict | None = None,
                 socket: Path | None = None, launch: tuple[str, ...] = ()):
        self.dir = tmp_path
        self.socket = socket or tmp_path / "ctl.sock"
        self.state = tmp_path / "state"
        self.config = config
        self.log_path = tmp_path / "daemon.log"
        self.extra_env = extra_env or {}
        self.program = [sys.executable, str(LAUNCHER), *launch, "--"] if launch else [str(BIN / "backupd")]
        self.proc: subprocess.Popen | None = None
        self.notify: NotifyReceiver | None = None

    def start(self, *args: str, wait_ready: bool = True) -> "Daemon":
        self.notify = NotifyReceiver(self.dir / f"notify-{time.monotonic_ns()}.sock")
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path), **self.extra_env}
        env.pop("LISTEN_FDS", None)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.program, "--config", str(self.config), *args],
                                     stderr=self._log, stdout=self._log, env=env)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> dict:
        """Wait for READY=1; fail at once, with the daemon's output, if it exits first."""
        def ready_or_dead():
            if self.proc.poll() is not None:
                raise AssertionError(f"backupd exited {self.proc.returncode}:\n"
                                     f"{self.log_path.read_text(errors='replace')[-3000:]}")
            return next((f for _, f in self.notify.drain() if f.get("READY") == "1"), None)
        return wait_for(ready_or_dead, timeout=timeout, what="READY=1 from the daemon")

    def ctl(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / "backupctl"), "--socket", str(self.socket), *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"backupctl {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stdout}{result.stderr}")
        return result

    def ctl_json(self, *args: str, expect_rc: int | None = 0) -> dict:
        result = self.ctl("--json", *args)
        assert expect_rc is None or result.returncode == expect_rc, (result.returncode, result.stdout,
                                                                      result.stderr)
        return json.loads(result.stdout)

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.notify.drain()
        self._log.close()
        self.notify.close()
        self.proc = None
        return code
