"""The process groups of source children, listed under their run folder while they run: killing what is
listed kills the whole group, even processes that ignore SIGTERM."""
from __future__ import annotations

import signal
import subprocess

from backupd.sources import process
from tests.sources.test_command import process_alive
from tests.waiting import wait_for


def test_a_listed_group_is_killed_and_unlisted_when_its_block_ends(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen(["sh", "-c", f"trap '' TERM; sleep 1000 & echo $! > {ready}; wait"],
                            start_new_session=True)
    try:
        sleeper = int(wait_for(lambda: ready.exists() and ready.read_text().strip(), what="the group's sleep"))
        with process.listed(proc, tmp_path / "run-a"):
            assert process.kill_listed(tmp_path / "run-b") == []            # another run's folder: untouched
            assert process_alive(sleeper)
            assert process.kill_listed(tmp_path / "run-a") == [proc.pid]
            assert proc.wait(10) < 0
            wait_for(lambda: not process_alive(sleeper), what="the end of the group's sleep")
        assert process.kill_listed(tmp_path / "run-a") == []
    finally:
        process.signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
