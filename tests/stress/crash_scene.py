"""The crash test's scene: a job with three kinds of source (a directory, a streaming command, a python
application's child) stored on a local destination on another file system and on the loopback Drive; and the
points of a run at which the daemon is killed, each a condition seen from outside (status, file sizes, the
Drive's sessions, the daemon's child processes), never a sleep."""
from __future__ import annotations

import contextlib
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.configs import command_source, directory_source, job, local_destination, write_config
from tests.stress import probes

MiB = 1 << 20
KEEP_LAST = 3                     # the job's retention: each run past the third prunes one archive per destination
CHUNK = MiB                       # the Drive destination's chunk_size
DUMP_MARK = "stress-dump"         # in the command source's command line, to find its process
# a slow producer on stdout, as pg_dump is: 512 KiB in 8 pieces
DUMP = f": {DUMP_MARK}; i=0; while [ $i -lt 8 ]; do head -c 65536 /dev/urandom; sleep 0.02; i=$((i+1)); done"
APP = '''"""An application whose state backupd's python source dumps: a file at a time, as a real one takes time."""
import os
import time


class State:
    def dump(self, folder):
        for index in range(8):
            with open(os.path.join(folder, f"part-{index:02d}.bin"), "wb") as out:
                out.write(os.urandom(65536))
            time.sleep(0.02)


def make():
    return State()
'''


def make_data(base: Path, rng: random.Random) -> int:
    """The directory source's files (three incompressible ones of 1 MiB, 200 small text ones); their total size."""
    data = base / "data"
    (data / "notes").mkdir(parents=True)
    total = 0
    for index in range(3):
        blob = rng.randbytes(MiB)
        (data / f"blob-{index}.bin").write_bytes(blob)
        total += len(blob)
    for index in range(200):
        text = (f"note {index} " * rng.randint(10, 120)).encode()
        (data / "notes" / f"note-{index:03d}.txt").write_bytes(text)
        total += len(text)
    (base / "app").mkdir()
    (base / "app" / "stressapp.py").write_text(APP)
    return total


def write_scene_config(base: Path, local_root: Path, drive, credentials: Path) -> Path:
    drive_destination = {"type": "gdrive", "credentials": str(credentials), "folder": "backupd/stress",
                         "endpoint": drive.url, "chunk_size": "1MiB", "bandwidth_limit": "20MiB/s",
                         "retry_deadline": "5s", "timeout": "5s"}
    sources = {"files": directory_source(base / "data"),
               "dump": command_source(["sh", "-c", DUMP], output="dump.bin"),
               "app": {"type": "python", "factory": "stressapp:make", "path": [str(base / "app")]}}
    return write_config(base, daemon={"stop_timeout": "5s"}, sources=sources,
                        jobs={"main": job(list(sources), ["local", "drive"], keep={"last": KEEP_LAST})},
                        destinations={"local": local_destination(local_root), "drive": drive_destination})


@dataclass
class Scene:
    """The daemon, its destinations, the run being killed, and the probes the kill points look through."""

    daemon: object
    drive: object
    local_root: Path
    dir_bytes: int
    archive_size: int = 0        # of the last successful run: what the next archive will be about
    run_id: str = ""
    progress_seen: list = field(default_factory=list)

    @property
    def spool(self) -> Path:
        return self.daemon.state / "spool"

    def progress(self) -> dict | None:
        """The job's running progress (stage, bytes_done) now, or None once no run is active."""
        job_status = probes.call(self.daemon.socket, "status")["jobs"][0]
        running = job_status["running"]
        if running is not None:
            self.progress_seen.append(running["stage"])
        return running

    def child_running(self, mark: str) -> bool:
        return any(mark in line for line in probes.children(self.daemon.proc.pid).values())

    def spool_partial_size(self) -> int:
        sizes = [p.stat().st_size for p in self.spool.glob("*.partial") if p.exists()]
        return max(sizes, default=-1)

    def local_partial_size(self) -> int:
        try:
            return max((p.stat().st_size for p in self.local_root.glob(".partial-*.tar.zst")), default=-1)
        except FileNotFoundError:       # renamed between the listing and the stat
            return -1

    def upload_bytes(self) -> int:
        """Bytes the Drive received for this run's unfinished upload session (-1: none open)."""
        sessions = [s for s in self.drive.sessions.values() if self.run_id[:8] in s.metadata.get("name", "")
                    and not s.file_id]
        return max((s.bytes_received for s in sessions), default=-1)

    def work_file_size(self, name: str) -> int:
        """The size of a file in this run's work folder (a command source's output lands there first); -1: none."""
        try:
            return (self.spool / f"{self.run_id}.work" / name).stat().st_size
        except OSError:
            return -1

    def local_archives(self) -> set[str]:
        return {p.name for p in self.local_root.glob("*.tar.zst") if not p.name.startswith(".")}

    def deletions(self) -> set[tuple[str, str]]:
        """(archive, destination) of every removal pruning recorded in the audit trail."""
        with contextlib.closing(sqlite3.connect(f"file:{self.daemon.state}/history.db?mode=ro", uri=True)) as db:
            return set(db.execute("SELECT archive, destination FROM deletions"))

    def app_files_written(self) -> int:
        folder = self.spool / f"{self.run_id}.work" / "app.python"
        try:
            return sum(1 for _ in folder.iterdir())
        except OSError:
            return 0


# A kill point: (scene, rng) -> (the condition to kill at, what it waits for)
KillPoint = Callable[[Scene, random.Random], tuple[Callable[[], bool], str]]


def source_read(scene: Scene, rng: random.Random):
    threshold = int(rng.uniform(0.1, 0.9) * scene.dir_bytes)

    def hit():
        progress = scene.progress()
        return progress is not None and progress["stage"] == "archiving" and progress["bytes_done"] >= threshold
    return hit, f"directory source read past {threshold} bytes"


def command_child(scene: Scene, rng: random.Random):
    threshold = rng.randrange(0, 400_000)
    return (lambda: scene.work_file_size("dump.stdout") >= threshold and scene.child_running(DUMP_MARK),
            f"command source streaming, its output past {threshold} bytes")


def python_child(scene: Scene, rng: random.Random):
    files = rng.randint(1, 7)
    return (lambda: scene.child_running("python_child.py") and scene.app_files_written() >= files,
            f"python source's child running, {files} files written")


def archive_write(scene: Scene, rng: random.Random):
    threshold = int(rng.uniform(0.1, 0.95) * scene.archive_size)
    return lambda: scene.spool_partial_size() >= threshold, f"spool .partial archive past {threshold} bytes"


def local_copy(scene: Scene, rng: random.Random):
    threshold = rng.randrange(0, scene.archive_size * 3 // 4)
    return lambda: scene.local_partial_size() >= threshold, f"local .partial- copy past {threshold} bytes"


def upload_chunk(index: int) -> KillPoint:
    def point(scene: Scene, rng: random.Random):
        return lambda: scene.upload_bytes() >= index * CHUNK, f"upload chunk {index} on its way"
    return point


def retention(scene: Scene, rng: random.Random):
    """Pruning after a successful run: the local destination has just lost its oldest archive."""
    before = scene.local_archives()
    return (lambda: len(before) >= KEEP_LAST and bool(before - scene.local_archives()),
            "pruning removed the oldest local archive")
