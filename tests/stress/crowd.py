"""Clients that run beside a test until it stops them: a prober whose well-formed `status` must always be answered
quickly, slow clients that never finish a frame, and clients that hang up in the middle of a reply or a stream."""
from __future__ import annotations

import selectors
import socket
import threading
import time
from pathlib import Path

from backupd.daemon import protocol as proto
from tests.stress import probes


class Background(threading.Thread):
    """A loop run until stop(); an exception in it is kept and raised again by stop()."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name=type(self).__name__)
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.step()
        except BaseException as exc:   # noqa: BLE001 - handed to the test in stop()
            self.failure = exc

    def step(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), f"{self.name} did not stop"
        if self.failure is not None:
            raise self.failure


class Prober(Background):
    """A well-formed `status` every `every` s on a fresh connection; records each answer's latency (s)."""

    def __init__(self, socket_path: Path, every: float = 0.1) -> None:
        super().__init__()
        self.socket_path, self.every = socket_path, every
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def step(self) -> None:
        start = time.perf_counter()
        try:
            proto.call(self.socket_path, "status", timeout=10, connect_timeout=10)
        except (OSError, proto.ProtocolError, proto.RemoteError) as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}"[:120])
        else:
            self.latencies.append(time.perf_counter() - start)
        self.stopping.wait(self.every)


class SlowClients(Background):
    """`count` connections at all times that send part of a frame and then nothing; one the daemon closes (its
    per-request deadline) is replaced by a new one."""

    def __init__(self, socket_path: Path, count: int = 50) -> None:
        super().__init__()
        self.socket_path, self.count = socket_path, count
        self.selector = selectors.DefaultSelector()
        self.opened = self.closed_by_daemon = 0
        self.answers: dict[str, int] = {}

    def _open_one(self) -> None:
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(self.socket_path))
        half = (self.opened % 3) + 1      # part of the header, or the header and part of the body
        conn.sendall((b"\x00\x00\x00\x40" + b'{"id": "slow", "command": "status"')[:half if half < 3 else 20])
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ)
        self.opened += 1

    def step(self) -> None:
        while len(self.selector.get_map()) < self.count:
            self._open_one()
        for key, _ in self.selector.select(0.2):
            conn = key.fileobj
            data = conn.recv(65536)
            if data[4:]:
                code = proto.decode_frame(data[4:]).get("error", {}).get("code", "?")
                self.answers[code] = self.answers.get(code, 0) + 1
            self.selector.unregister(conn)
            conn.close()
            self.closed_by_daemon += 1

    def stop(self) -> None:
        super().stop()
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


class HangUps(Background):
    """Asks for a large reply (`list`) or a stream (`fetch`) and hangs up after its first `read` bytes."""

    def __init__(self, socket_path: Path, command: str = "list", args: dict | None = None,
                 read: int = 1024) -> None:
        super().__init__()
        self.socket_path, self.command, self.args, self.read = socket_path, command, args or {}, read
        self.hung_up = 0

    def step(self) -> None:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(30)
            conn.connect(str(self.socket_path))
            proto.send_frame(conn, proto.request("hang-up", self.command, self.args))
            got = 0
            while got < self.read:
                chunk = conn.recv(self.read - got)
                assert chunk, f"the {self.command} reply ended after {got} bytes"
                got += len(chunk)
        self.hung_up += 1
        self.stopping.wait(0.05)


def summary(prober: Prober) -> dict:
    p50, p99 = probes.percentiles(prober.latencies)
    return {"probes": len(prober.latencies), "probe_p50_ms": round(p50 * 1000, 1),
            "probe_p99_ms": round(p99 * 1000, 1), "probe_max_ms": round(max(prober.latencies) * 1000, 1)}
