"""What backupd adds to sdnotify: named sd_notify messages, the watchdog, socket activation (LISTEN_FDS)."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable

import sdnotify

LISTEN_FDS_START = 3
# Seconds a message waits for room in a full NOTIFY_SOCKET queue (systemd lagging), then it is dropped: the main
# loop sends STATUS= between waits for signals, so an unbounded send left a SIGTERM unanswered while it blocked.
SEND_TIMEOUT = 0.5          # STATUS=, STOPPING=1, WATCHDOG=1: the next one says it again
STATE_SEND_TIMEOUT = 5.0    # READY=1, RELOADING=1, EXTEND_TIMEOUT_USEC=: systemd waits for these
_ACTIVATION_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def _as_latin1(text: str) -> str:
    """The UTF-8 bytes of `text` as a latin-1 string: sdnotify latin-1-encodes it back to exactly those bytes."""
    return text.encode("utf-8", "replace").decode("latin-1")


class Notifier:
    """Sends sd_notify messages through sdnotify.SystemdNotifier to $NOTIFY_SOCKET; does nothing when it is unset.

    The SystemdNotifier is made when NOTIFY_SOCKET is read (here, not at import) and again after a failed send.
    Errors never leave this class: a notification must never take the daemon down, nor block it for longer
    than its send timeout.
    """

    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET") or None
        self._lock = threading.Lock()
        self._systemd: sdnotify.SystemdNotifier | None = None
        with self._lock:
            self._connect()

    def _connect(self) -> sdnotify.SystemdNotifier | None:
        """The connected notifier, made now if there is none (debug=True: it raises instead of swallowing)."""
        if self._systemd is None and self.address is not None:
            try:
                self._systemd = sdnotify.SystemdNotifier(debug=True)
            except Exception:   # anything from the library (OSError, a malformed address): no notifier yet
                self._systemd = None
        return self._systemd

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str, timeout: float = SEND_TIMEOUT) -> bool:
        """Send one message made of KEY=VALUE fields, waiting at most `timeout` s for room; True if it was sent."""
        message = _as_latin1("\n".join(fields))
        with self._lock:
            systemd = self._connect()
            if systemd is None:
                return False
            try:
                systemd.socket.settimeout(timeout)
                systemd.notify(message)
            except Exception:   # OSError mostly (systemd went away, or no room in time); reconnect at the next message
                self._drop()
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status_field(status), timeout=STATE_SEND_TIMEOUT)

    def status(self, text: str) -> bool:
        return self.notify(*_status_field(text))

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd 253+ needs for Type=notify-reload."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status_field(status), timeout=STATE_SEND_TIMEOUT)

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status_field(status))

    def watchdog_ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask systemd for `seconds` more before the current start/stop/reload times out."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", timeout=STATE_SEND_TIMEOUT)

    def _drop(self) -> None:
        if self._systemd is not None and self._systemd.socket is not None:
            self._systemd.socket.close()
        self._systemd = None

    def close(self) -> None:
        with self._lock:
            self._drop()


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
