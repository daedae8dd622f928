"""A state directory that fills up during a run (issue 9, defects 1 and 2): the run fails within seconds as
an `archive` error naming the path, the free and the needed space; nothing of it stays in the spool or open;
its record is written; the next run works. On a real 50 MiB tmpfs (needs root)."""
from __future__ import annotations

import os
import random
import subprocess
import threading
from pathlib import Path

import pytest

from backupd.config import load
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.configs import directory_source, write_config
from tests.waiting import wait_for

MiB = 1 << 20
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")


@pytest.fixture
def small_fs(tmp_path) -> Path:
    """A 50 MiB tmpfs for the state directory."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs as root and must mount a tmpfs: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(data: Path, size: int) -> None:
    """`size` bytes of random (incompressible) data in 4 MiB files."""
    rng = random.Random(size)
    data.mkdir(exist_ok=True)
    for old in data.iterdir():
        old.unlink()
    for index, start in enumerate(range(0, size, 4 * MiB)):
        (data / f"part-{index:03d}.bin").write_bytes(rng.randbytes(min(4 * MiB, size - start)))


def run_to_the_end(config):
    """Execute one run in a thread; its record, failing the test if it has not ended within a minute."""
    run = Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir))
    worker = threading.Thread(target=run.execute, daemon=True)
    worker.start()
    wait_for(lambda: not worker.is_alive(), "the run to end", 60)
    return run.record


def open_below(path: Path) -> list[str]:
    """What this process holds open below `path` (descriptors of removed files included)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            targets.append(target)
    return targets


@pytest.mark.parametrize("size", [int(49.9 * MiB), 120 * MiB], ids=["just-under-free", "twice-free"])
def test_a_full_state_directory_fails_the_run_cleanly_and_the_next_run_works(tmp_path, small_fs, size):
    data = tmp_path / "data"
    fill(data, size)
    config = load(write_config(tmp_path, daemon={"state_dir": small_fs / "state"},
                               sources={"files": directory_source(data)}))
    spool = small_fs / "state" / "spool"

    record = run_to_the_end(config)
    assert record.status == "failed" and record.error.category == "archive", record.error
    message = record.error.message
    assert str(spool) in message and "No space left on device" in message, message
    assert "the archive needs more than the" in message and "MiB free there" in message, message
    assert "cannot read" not in message
    assert not list(spool.iterdir())
    assert not [t for t in open_below(small_fs) if "spool" in t or "(deleted)" in t]
    assert History(config.daemon.state_dir).get(record.run_id).status == "failed"

    fill(data, 5 * MiB)
    assert run_to_the_end(config).status == "success"
