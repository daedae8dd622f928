"""The systemd protocols backupd speaks: sd_notify, the watchdog, socket activation (stdlib only)."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable

LISTEN_FDS_START = 3
_ACTIVATION_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def _socket_address(value: str) -> str:
    """NOTIFY_SOCKET as an address for sendto: '@name' is an abstract socket."""
    return "\0" + value[1:] if value.startswith("@") else value


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET; does nothing when it is unset.

    A raw datagram socket rather than sdnotify.SystemdNotifier: that one encodes latin-1 only
    (a STATUS= with a non-latin character is dropped) and binds to the socket at construction.
    Send errors are swallowed: a notification must never take the daemon down.
    """

    def __init__(self, address: str | None = None):
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address = _socket_address(address) if address else None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) if self.address else None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send one message made of KEY=VALUE fields; True if it was sent."""
        if self._sock is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            with self._lock:
                self._sock.sendto(message, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status_field(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status_field(text))

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd 253+ needs for Type=notify-reload."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status_field(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status_field(status))

    def watchdog_ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask systemd for `seconds` more before the current start/stop/reload times out."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status_field(text: str | None) -> tuple[str, ...]:
    """STATUS= is one line: newlines would start new fields."""
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when the watchdog is not for us."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


class Watchdog(threading.Thread):
    """Pings WATCHDOG=1 every `interval` seconds while is_healthy() says so; silent otherwise."""

    def __init__(self, notifier: Notifier, interval: float, is_healthy: Callable[[], bool]):
        super().__init__(name="watchdog", daemon=True)
        self.notifier, self.interval, self.is_healthy = notifier, interval, is_healthy
        self._stop_event = threading.Event()
        self.pings = 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            if self._healthy():
                self.notifier.watchdog_ping()
                self.pings += 1
            self._stop_event.wait(self.interval)

    def _healthy(self) -> bool:
        try:
            return bool(self.is_healthy())
        except Exception:  # a health check that fails is an unhealthy daemon
            return False

    def stop(self, timeout: float | None = None) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)


def listen_fds(unset_environment: bool = True) -> list[socket.socket]:
    """Sockets passed by systemd socket activation (fds from 3), [] when not activated."""
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    if unset_environment:
        for name in _ACTIVATION_VARS:
            os.environ.pop(name, None)
    if not (pid.isdigit() and count.isdigit()) or int(pid) != os.getpid():
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def listen_fd_names() -> list[str]:
    """LISTEN_FDNAMES as a list (call before listen_fds(), which unsets it)."""
    names = os.environ.get("LISTEN_FDNAMES", "")
    return names.split(":") if names else []
