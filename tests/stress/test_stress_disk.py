"""Disk full and I/O errors under a real daemon: the spool on a small tmpfs, full before a run and filled while the
archive is written; a local destination whose file system turns read-only in the middle of a copy (ext4 with
errors=remount-ro, as a failing disk does) or whose directory is made read-only. Each: the right category and
message, nothing of backupd's left behind (nor held open), and the job runs again once the fault is gone."""
from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import age_keys
from tests.configs import directory_source, job, local_destination, write_config
from tests.stress import probes
from tests.stress.backups import destination_debris, spool_debris, unverified
from tests.waiting import wait_for

MiB = 1 << 20
IN_CI = os.environ.get("CI") == "true"


def random_files(folder: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, size, MiB)):
        (folder / f"part-{index:03d}.bin").write_bytes(rng.randbytes(min(MiB, size - start)))


def fill(path: Path, leave: int = 0) -> int:
    """Write `path` until its file system has at most `leave` bytes free; the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as out:   # unbuffered: a write the daemon's use made too big fails here,
        while (free := shutil.disk_usage(path.parent).free) > leave:   # not again at close
            try:
                written += out.write(b"\0" * min(MiB, free - leave))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    return written


def frozen_once(pid: int, condition, what: str, timeout: float = 30.0) -> None:
    """Let the daemon run in slices of a few milliseconds, frozen (SIGSTOP) in between, until `condition()` holds
    while it is frozen: the run is caught mid-archive however loaded the machine is. Leaves the daemon frozen."""
    deadline = time.monotonic() + timeout
    os.kill(pid, signal.SIGSTOP)
    while not condition():
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGCONT)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)          # one slice of the daemon's time, not a wait for an event
        os.kill(pid, signal.SIGSTOP)


def shown(record: dict, tmp_path: Path) -> str:
    """The run's error as the figures show it: category and message, the test's folder written as <tmp>."""
    return f"{record['error']['category']}: {record['error']['message']}".replace(str(tmp_path), "<tmp>")


def trigger(daemon, **args) -> dict:
    return probes.call(daemon.socket, "trigger", timeout=120, wait=True, **args)


@pytest.fixture
def spool_daemon(request, tmp_path, daemons):
    """A daemon whose spool is an 8 MiB tmpfs (its job encrypting when the parameter says so); each test fills
    its data folder."""
    spool = tmp_path / "state" / "spool"
    encrypt_to = []
    if getattr(request, "param", "plain") == "encrypted":
        if not shutil.which("age-keygen"):
            pytest.skip("age-keygen is not installed (apt-get install age)")
        encrypt_to = [age_keys.x25519(tmp_path / "keys").recipient]
    with probes.tmpfs(spool, "8m", "a full spool"):
        config = write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")},
                              jobs={"main": job(["files"], encrypt_to=encrypt_to)})
        (tmp_path / "data").mkdir()
        yield daemons(config), spool


def assert_failed_full(record: dict, spool: Path) -> None:
    assert record["status"] == "failed" and record["error"]["category"] == "archive", record
    message = record["error"]["message"]
    assert str(spool) in message and "No space left on device" in message and " free there" in message, message
    assert len(message.splitlines()) == 1 and len(message) < 400, message


def test_a_spool_full_before_the_run_fails_it_cleanly_and_the_job_runs_once_there_is_room(tmp_path, spool_daemon,
                                                                                        figures):
    daemon, spool = spool_daemon
    random_files(tmp_path / "data", 3 * MiB, seed=1)
    filler = spool / "filler"
    filled = fill(filler, leave=MiB)
    record = trigger(daemon)
    assert_failed_full(record, spool)
    assert spool_debris(spool, {"filler"}) == [] and probes.open_files(daemon.proc.pid, spool) == []
    filler.unlink()
    again = trigger(daemon)
    assert again["status"] == "success", again
    assert spool_debris(spool, set()) == [] and unverified([again], tmp_path / "archives") == []
    figures(filled_mib=round(filled / MiB, 1), error=repr(shown(record, tmp_path)))


@pytest.mark.parametrize("spool_daemon", ["plain", "encrypted"], indirect=True)
def test_a_spool_filled_while_the_archive_is_written_fails_the_run_cleanly(tmp_path, spool_daemon, figures):
    daemon, spool = spool_daemon
    random_files(tmp_path / "data", 6 * MiB, seed=2)
    filler = spool / "filler"
    partial_seen = lambda: any(p.stat().st_size > 0 for p in spool.glob("*.partial"))
    run_id = probes.call(daemon.socket, "trigger")["run_id"]
    frozen_once(daemon.proc.pid, partial_seen, "the archive to be written")
    try:
        filled = fill(filler)
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    record = wait_for(lambda: next((r for r in probes.call(daemon.socket, "history")["runs"]
                                    if r["run_id"] == run_id and r["status"] != "running"), None),
                      "the run to end", timeout=30)
    assert_failed_full(record, spool)
    assert spool_debris(spool, {"filler"}) == [] and probes.open_files(daemon.proc.pid, spool) == []
    filler.unlink()
    again = trigger(daemon)
    assert again["status"] == "success", again
    assert spool_debris(spool, set()) == []
    figures(filled_mib=round(filled / MiB, 1), error=repr(shown(record, tmp_path)))


# -- a destination that turns read-only mid-copy ------------------------------------------------------------------
class Ext4:
    """An ext4 file system on a loop device, mounted with errors=remount-ro: `fail()` makes the kernel see an
    error, and the file system goes read-only at once, open files included; `repair()` checks and remounts it."""

    def __init__(self, image: Path, mount: Path) -> None:
        self.image, self.mount = image, mount

    def create(self) -> str | None:
        if os.geteuid() != 0:
            return "a loop-mounted ext4 needs root"
        subprocess.run(["truncate", "-s", "96M", str(self.image)], check=True)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], capture_output=True, text=True)
        return made.stderr.strip() or None if made.returncode else self._mount()

    def _mount(self) -> str | None:
        self.mount.mkdir(exist_ok=True)
        done = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mount)],
                              capture_output=True, text=True)
        return f"cannot loop-mount an ext4 image: {done.stderr.strip()}" if done.returncode else None

    def fail(self) -> None:
        device = Path(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.mount)], capture_output=True,
                                     text=True, check=True).stdout.strip()).name
        Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("stress test: the disk failed")

    def repair(self) -> None:
        probes.unmount(self.mount)
        wait_for(lambda: subprocess.run(["findmnt", str(self.mount)], capture_output=True).returncode != 0,
                 "the failed file system to be unmounted", timeout=30)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True)
        assert self._mount() is None


def make_read_only(how: str, root: Path, ext4: Ext4 | None) -> None:
    {"ext4 remount-ro": lambda: ext4.fail(), "chmod": lambda: root.chmod(0o555)}[how]()


@pytest.mark.parametrize("how", ["ext4 remount-ro", "chmod"])
def test_a_destination_turning_read_only_mid_copy_fails_the_store_and_the_next_runs_recover(tmp_path, daemons,
                                                                                         how, figures):
    ext4 = Ext4(tmp_path / "disk.img", tmp_path / "disk") if how == "ext4 remount-ro" else None
    if ext4 is not None:
        refused = ext4.create()
        if refused:
            pytest.fail(refused) if IN_CI and os.geteuid() == 0 else pytest.skip(f"{how}: {refused}")
        root = ext4.mount / "archives"
    elif os.geteuid() == 0:
        pytest.skip("chmod: root writes through permission bits (as root the ext4 case runs instead)")
    else:
        root = tmp_path / "archives"
    try:
        _read_only_mid_copy(tmp_path, daemons, how, root, ext4, figures)
    finally:
        if ext4 is not None:
            probes.unmount(ext4.mount)


def _read_only_mid_copy(tmp_path, daemons, how, root: Path, ext4: Ext4 | None, figures) -> None:
    random_files(tmp_path / "data", 16 * MiB, seed=3)
    config = write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")},
                          destinations={"local": local_destination(root)})
    daemon = daemons(config)
    assert trigger(daemon)["status"] == "success"
    run_id = probes.call(daemon.socket, "trigger")["run_id"]
    copying = lambda: any(p.stat().st_size > 0 for p in root.glob(".partial-*.tar.zst"))
    if ext4 is not None:
        wait_for(copying, "the copy to the destination", timeout=30, interval=0.001)
    make_read_only(how, root, ext4)
    record = wait_for(lambda: next((r for r in probes.call(daemon.socket, "history")["runs"]
                                    if r["run_id"] == run_id and r["status"] != "running"), None), "the run", 60)
    assert record["status"] == "failed" and record["error"]["category"] == "destination", record
    strerror = {"ext4 remount-ro": "Read-only file system", "chmod": "Permission denied"}[how]
    assert strerror in record["error"]["message"] and str(root) in record["error"]["message"], record
    assert [d["status"] for d in record["destinations"]] == ["pending-upload"]
    spool = daemon.state / "spool"
    assert spool_debris(spool, {record["archive"]["name"]}) == [] and probes.open_files(daemon.proc.pid, root) == []

    ext4.repair() if ext4 is not None else root.chmod(0o755)
    again = trigger(daemon)
    assert again["status"] == "success", again
    pending = trigger(daemon, upload_pending=True)     # the held upload, retried on the operator's word
    assert pending["status"] == "success", pending
    assert spool_debris(spool, set()) == [] and destination_debris(root) == []
    runs = probes.call(daemon.socket, "history", limit=100)["runs"]
    assert unverified(runs, root) == []
    assert record["archive"]["name"] in os.listdir(root)
    figures(how=how, error=repr(shown(record, tmp_path)), backups_verified=sum(r["status"] == "success"
                                                                                for r in runs))
