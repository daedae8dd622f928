"""Control socket latency under load, against a real daemon: `python -m bench.control_latency [--trickle-seconds S]`.

  burst    1,000 `status` requests from 50 concurrent client processes (20 each), the daemon idle
  trickle  `status` every 0.1 s while 16 clients each send their request one byte every 4 s
Prints p50/p99/max latency in milliseconds and how many requests were not answered with a result.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from backupd.daemon import protocol as proto

from .daemon_cmd import daemon_argv, write_config

CLIENTS, PER_CLIENT = 50, 20
TRICKLERS, TRICKLE_EVERY = 16, 4.0


def timed_status(path: str) -> tuple[float, str]:
    """(seconds, outcome) of one status request: 'ok', or the error code / exception name."""
    started = time.perf_counter()
    try:
        proto.call(path, "status", timeout=30)
        outcome = "ok"
    except proto.RemoteError as exc:
        outcome = exc.code
    except (OSError, proto.ProtocolError) as exc:
        outcome = type(exc).__name__
    return time.perf_counter() - started, outcome


def client(path: str) -> list[tuple[float, str]]:
    return [timed_status(path) for _ in range(PER_CLIENT)]


def burst(path: str) -> list[tuple[float, str]]:
    with multiprocessing.Pool(CLIENTS) as pool:
        return [sample for samples in pool.map(client, [path] * CLIENTS) for sample in samples]


def trickler(path: str, stop: threading.Event) -> None:
    body = json.dumps(proto.request("slow", "status")).encode()
    data = len(body).to_bytes(proto.HEADER_SIZE, "big") + body
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        for byte in data:
            if stop.wait(TRICKLE_EVERY):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return


def trickle(path: str, seconds: float) -> list[tuple[float, str]]:
    stop = threading.Event()
    slow = [threading.Thread(target=trickler, args=(path, stop), daemon=True) for _ in range(TRICKLERS)]
    for thread in slow:
        thread.start()
    samples, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(timed_status(path))
        time.sleep(0.1)
    stop.set()
    return samples


def summary(name: str, samples: list[tuple[float, str]]) -> str:
    latencies = sorted(seconds * 1000 for seconds, _ in samples)
    failed = [outcome for _, outcome in samples if outcome != "ok"]
    p50, p99 = (latencies[min(len(latencies) - 1, int(q * len(latencies)))] for q in (0.50, 0.99))
    return (f"{name:8s} {len(samples):5d} requests  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"max {latencies[-1]:7.1f} ms  not answered with a result: {len(failed)} {sorted(set(failed))}")


def start_daemon(workdir: Path) -> tuple[subprocess.Popen, str]:
    config = write_config(workdir, None)
    path = str(workdir / "backupd.sock")
    daemon = subprocess.Popen(daemon_argv(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while timed_status(path)[1] != "ok":
        if time.monotonic() > deadline or daemon.poll() is not None:
            raise SystemExit("bench: the daemon did not start")
        time.sleep(0.05)
    return daemon, path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.control_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--trickle-seconds", type=float, default=20.0, help="length of the trickle window")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ctl-bench-") as folder:
        daemon, path = start_daemon(Path(folder))
        try:
            print(summary("burst", burst(path)))
            print(summary("trickle", trickle(path, args.trickle_seconds)))
        finally:
            daemon.terminate()
            daemon.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
