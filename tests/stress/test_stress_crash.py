"""Crash: the daemon SIGKILLed at random points of a run (fixed seed), at least 30 times: while a source is read
(a directory, a streaming command, a python application's child), while the archive is written, at each upload
chunk to the loopback Drive, while the archive is copied to a local destination on another file system (a
tmpfs, as root). After each restart: nothing partial is listed anywhere, nothing of backupd's temporary files is
left, the killed run is recorded truthfully, the next run succeeds, and every earlier backup still verifies."""
from __future__ import annotations

import collections
import hashlib
import random
import signal
from pathlib import Path

import pytest

from tests.fakes.drive import DriveServer
from tests.stress import crash_scene as cs
from tests.stress import probes
from tests.stress.backups import destination_debris, extract, foreign_files, sha256_of, spool_debris, unverified
from tests.waiting import wait_for

SEED = 20240914
TRIES = 3                       # a kill point the run raced past is tried again with a fresh run, this often
POINTS: dict[str, tuple[int, cs.KillPoint]] = {   # name: (kills, where)
    "source read": (6, cs.source_read), "command source": (5, cs.command_child),
    "python child": (5, cs.python_child), "archive write": (7, cs.archive_write),
    "local copy": (5, cs.local_copy)}


def kill_plan(rng: random.Random, chunks: int, cross_fs: bool) -> list[tuple[str, cs.KillPoint]]:
    plan = [(name, point) for name, (times, point) in POINTS.items() for _ in range(times)
            if cross_fs or name != "local copy"]
    plan += [(f"upload chunk {index}", cs.upload_chunk(index)) for index in range(chunks)]
    rng.shuffle(plan)
    return plan


@pytest.fixture
def scene(tmp_path, daemons, rsa_key):
    rng = random.Random(SEED)
    dir_bytes = cs.make_data(tmp_path, rng)
    mount = tmp_path / "other-fs"
    refused = probes.mount_tmpfs(mount, "1g")
    local_root = mount / "archives" if refused is None else tmp_path / "archives"
    with DriveServer() as drive:
        credentials = drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account(key=rsa_key))
        config = cs.write_scene_config(tmp_path, local_root, drive, credentials)
        yield cs.Scene(daemons(config), drive, local_root, dir_bytes), rng, refused
        if refused is None:
            probes.unmount(mount)


@pytest.fixture(scope="module")
def rsa_key():
    from tests.fakes.oauth import new_key
    return new_key()


def history(scene: cs.Scene) -> list[dict]:
    return probes.call(scene.daemon.socket, "history", limit=1000)["runs"]


def record_of(scene: cs.Scene, run_id: str) -> dict:
    return next(r for r in history(scene) if r["run_id"] == run_id)


def run_to_success(scene: cs.Scene) -> dict:
    record = probes.call(scene.daemon.socket, "trigger", timeout=120, wait=True)
    assert record["status"] == "success", record
    scene.archive_size = record["archive"]["size"]
    return record


def run_over(scene: cs.Scene) -> bool:
    running = probes.call(scene.daemon.socket, "status")["jobs"][0]["running"]
    return running is None or running["run_id"] != scene.run_id


def kill_at(scene: cs.Scene, point: cs.KillPoint, rng: random.Random) -> tuple[dict[int, str], int]:
    """Start a run, kill the daemon and its children when `point` holds; (the children killed, tries)."""
    for attempt in range(1, TRIES + 1):
        scene.run_id = probes.call(scene.daemon.socket, "trigger")["run_id"]
        hit, what = point(scene, rng)
        state = lambda: "hit" if hit() else ("over" if run_over(scene) else None)
        if wait_for(state, what, timeout=60, interval=0.001) == "hit":
            pid = scene.daemon.proc.pid
            children = probes.children(pid)
            probes.kill_like_systemd(pid, children)
            scene.daemon.stop(signal.SIGKILL)
            return children, attempt
    raise AssertionError(f"the run raced past '{what}' {TRIES} times")


def left_behind(scene: cs.Scene) -> dict[str, bool]:
    """What the kill left for the restart to settle (evidence that it struck mid-work)."""
    return {"spool partial": scene.spool_partial_size() >= 0, "work folder": any(scene.spool.glob("*.work")),
            "local partial": bool(destination_debris(scene.local_root)),
            "upload session": scene.upload_bytes() >= 0}


def assert_settled(scene: cs.Scene, killed: str, children: dict[int, str]) -> str:
    """After the restart: the killed run recorded truthfully, nothing partial listed, no debris; its outcome."""
    record = record_of(scene, killed)
    assert record["status"] in ("interrupted", "success") and record["ended"], record
    stored = {d["name"] for d in record["destinations"] if d["status"] == "success"}
    if record["status"] == "success":
        assert stored == {"local", "drive"} and "found stored" in record["note"], record
    else:
        assert record["error"] and record["error"]["message"], record
    waiting = {record["archive"]["name"]} if record["archive"] and stored != {"local", "drive"} else set()
    assert spool_debris(scene.spool, waiting) == []
    if waiting:
        assert sha256_of(scene.spool / record["archive"]["name"]) == record["archive"]["sha256"]
    assert destination_debris(scene.local_root) == [] and foreign_files(scene.local_root) == []
    assert_listing_complete(scene)
    wait_for(lambda: not any(probes.alive(pid) for pid in children), "the killed daemon's children to be gone", 10)
    return "reconciled success" if record["status"] == "success" else \
        f"interrupted{', archive kept for upload' if waiting else ''}"


def assert_listing_complete(scene: cs.Scene) -> None:
    """Every backup `list` shows is complete: its bytes have the sha256 it is listed with."""
    listed = probes.call(scene.daemon.socket, "list")["backups"]
    on_drive = {f.id: f for f in scene.drive.files.values()}
    for backup in listed:
        if backup["destination"] == "local":
            assert sha256_of(Path(backup["location"])) == backup["sha256"], backup
        else:
            content = on_drive[backup["file_id"]].content
            assert content is not None and hashlib.sha256(content).hexdigest() == backup["sha256"], backup


def verify_all(scene: cs.Scene, extracted: set[str], scratch: Path) -> int:
    """Every successful run's archive verifies on both destinations; new ones are also extracted. The count."""
    records = history(scene)
    assert unverified(records, scene.local_root, scene.drive) == []
    for record in records:
        name = (record.get("archive") or {}).get("name")
        if record["status"] == "success" and name not in extracted:
            names = extract(scene.local_root / name, scratch / name)
            assert names == ["MANIFEST.json", "app", "dump", "files"], names
            extracted.add(name)
    return sum(r["status"] == "success" for r in records)


@pytest.mark.timeout(600)
def test_sigkill_at_random_points_never_loses_or_corrupts_a_backup(scene, tmp_path, figures):
    scene, rng, refused = scene
    scratch, extracted = tmp_path / "extracted", set()
    run_to_success(scene)
    chunks = -(-scene.archive_size // cs.CHUNK)
    plan = kill_plan(rng, chunks, cross_fs=refused is None)
    outcomes, evidence, retries = collections.Counter(), collections.Counter(), 0
    for name, point in plan:
        children, tries = kill_at(scene, point, rng)
        retries += tries - 1
        evidence.update(k for k, v in left_behind(scene).items() if v)
        scene.daemon.start()
        outcome = assert_settled(scene, scene.run_id, children)
        outcomes[f"{name.split(' chunk')[0]}: {outcome}"] += 1
        run_to_success(scene)
        assert spool_debris(scene.spool, set()) == []
        verified = verify_all(scene, extracted, scratch)
    assert len(plan) >= 30
    figures(kills=len(plan), seed=SEED, retried_points=retries, backups_verified=verified,
            extracted=len(extracted), outcomes=dict(outcomes), left_for_restart=dict(evidence),
            local_copy=("tmpfs, another file system" if refused is None else f"skipped: {refused}"))
