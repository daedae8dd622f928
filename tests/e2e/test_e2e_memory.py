"""Runs leave the daemon's resting memory where the first run left it: five runs of a 50 MiB directory in one
daemon process, its RSS read from /proc once each run's threads have ended."""
from __future__ import annotations

import os
from pathlib import Path

from backupd.client import Client, RunRecord
from tests.configs import write_config
from tests.e2e.proc_memory import MiB_KIB, memory_kib
from tests.waiting import wait_for

RUNS = 5
GROWTH_MIB = 25          # over the first run; it was 10-20 MiB a run while malloc's arenas kept freed buffers


def make_tree(root: Path) -> int:
    """25 files of 1 MiB (half random, so zstd has work) and 6,400 small text files: 50 MiB in all."""
    (root / "small").mkdir(parents=True)
    for i in range(25):
        (root / f"large-{i:02d}.bin").write_bytes(os.urandom(512 << 10) + bytes([i]) * (512 << 10))
    for i in range(6400):
        (root / "small" / f"note-{i:04d}.txt").write_bytes(b"line %d of a small file\n" % i * 170)
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def task_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def finished(client: Client, run_id: str) -> RunRecord | None:
    return next((run for run in client.history(limit=5) if run.run_id == run_id and run.status != "running"),
                None)


def test_runs_leave_the_resting_memory_flat(tmp_path, start_daemon):
    size = make_tree(tmp_path / "data")
    daemon = start_daemon(write_config(tmp_path))
    client, pid = Client(daemon.socket, timeout=60), daemon.proc.pid
    idle_threads = task_count(pid)
    resting = []
    for _ in range(RUNS):
        run_id = client.trigger().run_id
        record = wait_for(lambda: finished(client, run_id), f"run {run_id} to end", timeout=120)
        assert record.ok and record.archive.bytes_in == size, record
        wait_for(lambda: task_count(pid) <= idle_threads, "the run's threads to end")
        resting.append(memory_kib(pid)["VmRSS"])
    print(f"\n{size / 2**20:.0f} MiB a run, resting RSS after each: "
          f"{', '.join(f'{kib / MiB_KIB:.0f}' for kib in resting)} MiB")
    assert max(resting) - resting[0] < GROWTH_MIB * MiB_KIB, resting
