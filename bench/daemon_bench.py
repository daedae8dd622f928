"""The daemon at rest: time from exec to READY=1, idle RSS and CPU, and `backupctl status` against `python3 -c pass`."""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from . import daemon_cmd
from .measure import BenchError, tail, wall_times

READY_TIMEOUT = 30.0
TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def running_daemon(workdir: Path, config: Path | None = None):
    """Start `backupd --config CFG` (default: the generated one) with a NOTIFY_SOCKET the harness owns; yield
    (process, seconds to READY=1)."""
    config = config or daemon_cmd.write_config(workdir, None)
    notify_path = workdir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        log = open(workdir / "daemon.log", "wb")
        env = {**os.environ, **daemon_cmd.ENV, "NOTIFY_SOCKET": str(notify_path)}
        start = time.perf_counter()
        proc = subprocess.Popen(daemon_cmd.daemon_argv(config), env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(notify, proc, workdir / "daemon.log")
            yield proc, time.perf_counter() - start
        finally:
            _stop(proc)
            log.close()


def _wait_ready(notify: socket.socket, proc: subprocess.Popen, log_path: Path) -> None:
    """Block on the notify socket until a datagram carries READY=1 (or the daemon dies, or time is up)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        notify.settimeout(min(left, 0.5))
        try:
            message = notify.recv(4096).decode(errors="replace")
        except socket.timeout:
            if proc.poll() is not None:
                raise BenchError(f"backupd exited {proc.returncode} before READY=1: {tail(log_path)}")
            continue
        if "READY=1" in message.split("\n"):
            return
    raise BenchError(f"backupd sent no READY=1 within {READY_TIMEOUT:.0f} s: {tail(log_path)}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_status(pid: int) -> dict:
    """VmRSS / VmHWM in bytes and user+system CPU seconds of a live process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2:].split()   # fields after "pid (comm) "
    fields["cpu"] = (int(rest[11]) + int(rest[12])) / TICKS   # utime, stime (fields 14, 15)
    return fields


def bench_ready(work: Path, repeat: int) -> dict:
    """Median time from exec to READY=1 over `repeat` fresh starts."""
    times = []
    for index in range(repeat):
        with running_daemon(work / f"ready-{index}") as (_, seconds):
            times.append(seconds)
    return {"runs": repeat, "ready_median": statistics.median(times), "ready_min": min(times),
            "ready_max": max(times)}


def bench_idle(work: Path, window: float) -> dict:
    """RSS and CPU time of a started, idle daemon over `window` seconds, scaled to CPU seconds per minute."""
    with running_daemon(work / "idle") as (proc, _):
        before = proc_status(proc.pid)
        rss_samples = []
        end = time.monotonic() + window
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))   # the measurement window itself, sampled once a second
            rss_samples.append(proc_status(proc.pid)["VmRSS"])
        after = proc_status(proc.pid)
    cpu = after["cpu"] - before["cpu"]
    return {"window_s": window, "rss_start": before["VmRSS"], "rss_end": after["VmRSS"],
            "rss_max": max(rss_samples), "hwm": after["VmHWM"], "cpu_startup_s": before["cpu"],
            "cpu_window_s": cpu, "cpu_per_minute_s": cpu * 60.0 / window}


def bench_ctl(work: Path, repeat: int) -> dict:
    """Median wall time of `backupctl --socket S status` against `python3 -c pass` (same interpreter)."""
    with running_daemon(work / "ctl") as _:
        socket_path = work / "ctl" / "backupd.sock"
        python = str(daemon_cmd.BIN / "python3")
        wall_times([python, "-c", "pass"], 2, daemon_cmd.ENV)   # warm the page cache for both commands
        wall_times(daemon_cmd.ctl_argv(socket_path) + ["status"], 2, daemon_cmd.ENV)
        ctl, base = [], []
        for _ in range(repeat):   # interleaved, so a drift of the machine's speed hits both alike
            ctl += wall_times(daemon_cmd.ctl_argv(socket_path) + ["status"], 1, daemon_cmd.ENV)
            base += wall_times([python, "-c", "pass"], 1, daemon_cmd.ENV)
    return {"runs": repeat, "ctl_median": statistics.median(ctl), "ctl_min": min(ctl), "ctl_max": max(ctl),
            "python_median": statistics.median(base), "ratio": statistics.median(ctl) / statistics.median(base)}
