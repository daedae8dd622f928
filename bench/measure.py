"""Run a command in a fresh child and account for it: wall time, CPU time and peak RSS from wait4()."""
from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


class BenchError(Exception):
    """A measured command failed; the message names the command and the tail of its stderr."""


@dataclass(frozen=True)
class Invocation:
    """One timed command: what to run, where, and which path holds its output (for its size)."""

    argv: list[str]
    cwd: Path
    output: Path
    env: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    wall: float            # seconds
    cpu: float             # user + system seconds of the child and its waited-for descendants
    peak_rss: int          # bytes: the largest ru_maxrss of the child or any descendant
    output_bytes: int


def run_once(inv: Invocation, log_path: Path, timeout: float = 3600.0) -> Sample:
    """Run `inv` to completion; raise BenchError if it fails or outlives `timeout`."""
    env = {**os.environ, **inv.env}
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(inv.argv, cwd=inv.cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        status, usage = _wait4(proc, timeout)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(map(str, inv.argv[:4]))} exited {proc.returncode}: "
                         f"{tail(log_path)}")
    return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_rss=usage.ru_maxrss * 1024,
                  output_bytes=tree_size(inv.output))


def _wait4(proc: subprocess.Popen, timeout: float):
    """wait4() the child (its own rusage, not the cumulative RUSAGE_CHILDREN); kill it after `timeout`."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        raise BenchError(f"{proc.args[0]} did not finish within {timeout:.0f} s; killed")
    return status, usage


def tail(path: Path, limit: int = 400) -> str:
    """The last `limit` characters of a log, on one line."""
    try:
        text = path.read_bytes()[-limit:].decode(errors="replace")
    except OSError:
        return "(no output)"
    return " | ".join(line for line in text.splitlines() if line.strip()) or "(no output)"


def tree_size(path: Path) -> int:
    """Bytes held by a file, or by every file below a folder."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, names in os.walk(path):
        total += sum(os.lstat(os.path.join(folder, name)).st_size for name in names)
    return total


def summarize(samples: list[Sample]) -> dict:
    """Median and spread of a series of samples, in seconds and bytes."""
    walls = [s.wall for s in samples]
    rss = [s.peak_rss for s in samples]
    return {
        "runs": len(samples),
        "wall_median": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "cpu_median": statistics.median(s.cpu for s in samples),
        "peak_rss_median": int(statistics.median(rss)),
        "peak_rss_max": max(rss),
        "output_bytes": int(statistics.median(s.output_bytes for s in samples)),
        "walls": [round(w, 4) for w in walls],
    }


def wall_times(argv: list[str], repeat: int, env: dict | None = None) -> list[float]:
    """Wall times of `repeat` runs of a short command (stdout and stderr discarded)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv[:3])} exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    return times


def tool_version(argv: list[str]) -> str:
    """The version number a tool prints for `argv` (e.g. `zstd --version`), or "not installed"."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    found = re.search(r"\d+\.\d+(\.\d+)?", done.stdout or done.stderr)
    return found.group(0) if done.returncode == 0 and found else "not installed"
