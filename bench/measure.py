"""Run a command in a fresh child and account for it: wall time, CPU time and peak RSS from wait4()."""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parent.parent


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
    """Run `inv` to completion through bench.launch; raise BenchError if it fails or outlives `timeout`."""
    env = {**os.environ, **inv.env, "PYTHONPATH": str(REPO_ROOT)}
    result_path = log_path.with_name(log_path.name + ".rusage.json")
    argv = [sys.executable, "-m", "bench.launch", str(result_path), "--", *map(str, inv.argv)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=inv.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        raise BenchError(f"{inv.argv[0]} was killed or could not start "
                         f"(limit {timeout:.0f} s): {tail(log_path)}") from None
    if result["exit"] != 0:
        raise BenchError(f"{' '.join(map(str, inv.argv[:4]))} exited {result['exit']}: {tail(log_path)}")
    return Sample(wall=result["wall"], cpu=result["cpu"], peak_rss=result["maxrss_kib"] * 1024,
                  output_bytes=tree_size(inv.output))


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
