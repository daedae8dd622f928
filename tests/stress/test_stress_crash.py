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
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.drive import DriveServer
from tests.stress import crash_scene as cs
from tests.stress import probes
from tests.stress.backups import (destination_debris, drive_archives, extract, foreign_files, sha256_of, spool_debris,
                                  unverified)
from tests.waiting import wait_for

SEED = 20240914
BACKUPCTL = Path(sys.executable).parent / "backupctl"
TRIES = 3                       # a kill point the run raced past is tried again with a fresh run, this often
RESTORE = object()             # the kill point of a restore stream (no run: backupctl restore is killed under)
POINTS: dict[str, tuple[int, object]] = {   # name: (kills, where)
    "source read": (5, cs.source_read), "command source": (4, cs.command_child),
    "python child": (4, cs.python_child), "archive write": (5, cs.archive_write),
    "local copy": (5, cs.local_copy), "restore stream": (4, RESTORE)}


def kill_plan(rng: random.Random, chunks: int, cross_fs: bool) -> list[tuple[str, object]]:
    """Every kill point as often as POINTS says, each upload chunk once, shuffled; without another file system
    for the local destination its copy kills go to the archive write instead."""
    counts = {name: times for name, (times, _) in POINTS.items()}
    if not cross_fs:
        counts["archive write"] += counts.pop("local copy")
    plan = [(name, POINTS[name][1]) for name, times in counts.items() for _ in range(times)]
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
        if wait_for(state, what, timeout=60, interval=0.0002) == "hit":
            children = probes.kill_like_systemd(scene.daemon.proc.pid)
            scene.daemon.stop(signal.SIGKILL)
            return children, attempt
    raise AssertionError(f"the run raced past '{what}' {TRIES} times")


def kill_during_restore(scene: cs.Scene, rng: random.Random, target: Path) -> tuple[dict[int, str], int]:
    """`backupctl restore` of the newest backup from the Drive; the daemon killed once it has asked the Drive for
    some but not all of the archive's chunks (what it streams is paced by bandwidth_limit), so the stream is cut."""
    newest = next(r for r in history(scene) if r["status"] == "success")["archive"]
    chunks = rng.randint(1, -(-newest["size"] // cs.CHUNK) - 1)
    asked = scene.drive.count("media") + chunks
    restore = subprocess.Popen([str(BACKUPCTL), "--socket", str(scene.daemon.socket), "restore", newest["name"],
                                "--to", str(target), "--destination", "drive"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        hit = wait_for(lambda: "hit" if scene.drive.count("media") >= asked else
                       ("over" if restore.poll() is not None else None),
                       f"the daemon to fetch {chunks} chunks from the Drive", timeout=60, interval=0.0002)
        assert hit == "hit", restore.communicate()
        children = probes.kill_like_systemd(scene.daemon.proc.pid)
        scene.daemon.stop(signal.SIGKILL)
        _, err = restore.communicate(timeout=60)
    finally:
        restore.kill()
    assert restore.returncode not in (0, None) and len(err.strip().splitlines()) == 1, (restore.returncode, err)
    assert not target.exists() or list(target.iterdir()) == [], "a restore cut off left files in its folder"
    return children, 1


def left_behind(scene: cs.Scene) -> dict[str, bool]:
    """What the kill left for the restart to settle (evidence that it struck mid-work)."""
    return {"spool partial": scene.spool_partial_size() >= 0, "work folder": any(scene.spool.glob("*.work")),
            "local partial": bool(destination_debris(scene.local_root)),
            "upload session": scene.upload_bytes() >= 0}


def assert_settled(scene: cs.Scene, killed: str | None, children: dict[int, str]) -> str:
    """After the restart: the killed run (if one was) recorded truthfully, nothing partial listed, no debris;
    what became of it."""
    record = record_of(scene, killed) if killed else None
    outcome, waiting = "no run", set()
    if record is not None:
        outcome, waiting = assert_truthful(scene, record)
    assert spool_debris(scene.spool, waiting) == []
    if waiting:
        assert sha256_of(scene.spool / record["archive"]["name"]) == record["archive"]["sha256"]
    assert destination_debris(scene.local_root) == [] and foreign_files(scene.local_root) == []
    assert_listing_complete(scene)
    wait_for(lambda: not any(probes.alive(pid) for pid in children), "the killed daemon's children to be gone", 10)
    return outcome


def assert_truthful(scene: cs.Scene, record: dict) -> tuple[str, set[str]]:
    """The killed run's record says what happened: ended, and stored exactly where its archive is."""
    assert record["status"] in ("interrupted", "success") and record["ended"], record
    stored = {d["name"] for d in record["destinations"] if d["status"] == "success"}
    if record["status"] == "success":
        assert stored == {"local", "drive"} and "found stored" in record["note"], record
    else:
        assert record["error"] and record["error"]["message"], record
    if record["archive"]:
        name, pruned = record["archive"]["name"], scene.deletions()
        present = {"local": name in scene.local_archives(), "drive": name in drive_archives(scene.drive)}
        for result in record["destinations"]:
            if result["status"] == "success":
                assert present[result["name"]] or (name, result["name"]) in pruned, (result, "not there")
            elif result["status"] == "failed":
                assert not present[result["name"]], (result, "says not stored, but it is there")
    waiting = {record["archive"]["name"]} if record["archive"] and stored != {"local", "drive"} else set()
    waiting &= {p.name for p in scene.spool.iterdir()}
    outcome = "reconciled success" if record["status"] == "success" else "interrupted"
    return outcome + (", archive kept for upload" if waiting else ""), waiting


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
    """Every successful run's archive verifies on both destinations unless the audit trail records its pruning
    there; each new one is also extracted. How many verified."""
    records, pruned = history(scene), scene.deletions()
    assert unverified(records, scene.local_root, scene.drive, pruned) == []
    for record in records:
        name = (record.get("archive") or {}).get("name")
        if record["status"] == "success" and name not in extracted and (name, "local") not in pruned:
            names = extract(scene.local_root / name, scratch / name)
            assert names == ["MANIFEST.json", "app", "dump", "files"], names
            extracted.add(name)
    return sum(r["status"] == "success" for r in records)


def crash_cycles(scene: cs.Scene, plan: list[tuple[str, object]], rng: random.Random, scratch: Path) -> dict:
    """For each kill point: kill there, restart, check everything settled, run again, verify every backup;
    the figures."""
    extracted: set[str] = set()
    outcomes, evidence, retries, verified = collections.Counter(), collections.Counter(), 0, 0
    for index, (name, point) in enumerate(plan):
        if point is RESTORE:
            children, tries = kill_during_restore(scene, rng, scratch / f"restore-{index}")
            killed = None
        else:
            children, tries = kill_at(scene, point, rng)
            killed = scene.run_id
        retries += tries - 1
        evidence.update(k for k, v in left_behind(scene).items() if v)
        scene.daemon.start()
        outcomes[f"{name.split(' chunk')[0]}: {assert_settled(scene, killed, children)}"] += 1
        run_to_success(scene)
        assert spool_debris(scene.spool, set()) == []
        verified = verify_all(scene, extracted, scratch / "extracted")
    return {"kills": len(plan), "seed": SEED, "retried_points": retries, "backups_verified": verified,
            "extracted": len(extracted), "pruned": len(scene.deletions()), "outcomes": dict(outcomes),
            "left_for_restart": dict(evidence)}


@pytest.mark.timeout(600)
def test_sigkill_at_random_points_never_loses_or_corrupts_a_backup(scene, tmp_path, figures):
    scene, rng, refused = scene
    for _ in range(cs.KEEP_LAST):         # enough backups that every later run prunes one
        run_to_success(scene)
    plan = kill_plan(rng, -(-scene.archive_size // cs.CHUNK), cross_fs=refused is None)
    assert len(plan) >= 30
    found = crash_cycles(scene, plan, rng, tmp_path)
    figures(**found, local_copy=("tmpfs, another file system" if refused is None else f"skipped: {refused}"))


@pytest.mark.timeout(300)
def test_sigkill_while_pruning_keeps_the_record_and_the_audit_trail_true(scene, tmp_path, figures):
    scene, rng, _ = scene
    for _ in range(cs.KEEP_LAST):
        run_to_success(scene)
    figures(**crash_cycles(scene, [("retention", cs.retention)] * 4, rng, tmp_path))
