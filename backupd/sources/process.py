"""Child processes of sources (command, python): each in its own process group, stopped as a whole, with the
tail of its output kept for error messages. While it runs, a child's group is listed under the run folder
(`workdir`) it works for, so a run the daemon gives up on can have them killed before the daemon exits."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Iterator

STDERR_TAIL = 4096          # bytes of output kept for the error message
TERM_GRACE = 5.0            # seconds between SIGTERM and SIGKILL

_live_lock = threading.Lock()
_live_groups: dict[str, set[int]] = {}     # run folder -> the process groups of its children still running


@contextlib.contextmanager
def listed(proc: subprocess.Popen, workdir) -> Iterator[None]:
    """List the group of `proc` (its own: start_new_session) under `workdir` until the block ends."""
    key = os.fspath(workdir)
    with _live_lock:
        _live_groups.setdefault(key, set()).add(proc.pid)
    try:
        yield
    finally:
        with _live_lock:
            groups = _live_groups.get(key, set())
            groups.discard(proc.pid)
            if not groups:
                _live_groups.pop(key, None)


def kill_listed(workdir) -> list[int]:
    """SIGKILL every process group listed under `workdir` (the grace for SIGTERM is over); the groups."""
    with _live_lock:
        groups = sorted(_live_groups.get(os.fspath(workdir), ()))
    for pgid in groups:
        signal_group(pgid, signal.SIGKILL)
    return groups


class TailReader(threading.Thread):
    """Drains a pipe, keeping only its last STDERR_TAIL bytes."""

    def __init__(self, pipe) -> None:
        super().__init__(name="source-output", daemon=True)
        self._pipe = pipe
        self._tail = b""

    def run(self) -> None:
        with self._pipe:
            for chunk in iter(lambda: self._pipe.read1(65536), b""):
                self._tail = (self._tail + chunk)[-STDERR_TAIL:]

    def text(self) -> str:
        self.join(TERM_GRACE)
        return self._tail.decode("utf-8", "replace").strip() or "(empty)"


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group; SIGKILL what is left of the group (children that ignored it, or the
    process itself if it lingers past TERM_GRACE)."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(TERM_GRACE)
    except subprocess.TimeoutExpired:
        pass
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def exit_text(code: int) -> str:
    """'exited with code 3' or 'was killed by signal 9 (SIGKILL)'."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-code}{name}"
