"""Crash, for backup sets: the daemon SIGKILLed while differentials and fulls of a differential job are being
written, over rounds of a changing tree (fixed seed). After each restart nothing partial is left (spool,
destination, the full's manifest copies), the killed run is recorded as interrupted, the next run continues the
set (a differential against the same full unless a full was asked for), and at the end every successful backup,
restored with tar -G, is the tree of its time."""
from __future__ import annotations

import random
import signal
import shutil
from pathlib import Path

import pytest

from tests.configs import directory_source, job, local_destination, write_config
from tests.diff_trees import snapshot, tar_restore
from tests.stress import probes
from tests.stress.backups import destination_debris, spool_debris
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
SEED = 20261201
ROUNDS = 10


def make_tree(root: Path, rng: random.Random) -> None:
    for index in range(600):
        folder = root / f"d{index % 12}" / f"s{index % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}").write_bytes(rng.randbytes(rng.choice([100, 4000, 60_000, 400_000])))


def change_tree(root: Path, rng: random.Random, round_: int) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in rng.sample(files, 40):
        path.write_bytes(rng.randbytes(rng.choice([100, 60_000, 400_000])))
    for path in rng.sample(sorted(set(files) - set(rng.sample(files, 40))), 10):
        path.unlink(missing_ok=True)
    (root / f"new{round_}").mkdir()
    (root / f"new{round_}" / "n").write_bytes(rng.randbytes(5000))


def trigger(daemon, **args) -> dict:
    return probes.call(daemon.socket, "trigger", timeout=120, **args)


def archiving(daemon, run_id: str):
    running = probes.call(daemon.socket, "status")["jobs"][0]["running"]
    if running is None or running["run_id"] != run_id:
        return "over"
    return "hit" if running["stage"] == "archiving" else None


def test_sigkill_while_sets_are_written_keeps_every_backup_restorable(tmp_path, daemons, figures):
    rng = random.Random(SEED)
    data = tmp_path / "data"
    make_tree(data, rng)
    archives = tmp_path / "archives"
    config = write_config(tmp_path, sources={"files": directory_source(data)},
                          destinations={"local": local_destination(archives)},
                          jobs={"main": job(["files"], differential=True, full_every={"size": "1000%"})})
    daemon = daemons(config)
    first = trigger(daemon, wait=True)
    assert first["status"] == "success" and first["archive"]["kind"] == "full"
    states, base, killed = {first["archive"]["name"]: snapshot(data)}, first["archive"]["name"], 0
    for round_ in range(ROUNDS):
        change_tree(data, rng, round_)
        asked_full = round_ % 4 == 3
        run_id = trigger(daemon, full=asked_full)["run_id"]
        if wait_for(lambda: archiving(daemon, run_id), "the run to be archiving", timeout=60,
                    interval=0.0002) == "hit":
            probes.kill_like_systemd(daemon.proc.pid)
            daemon.stop(signal.SIGKILL)
            daemon.start()
            killed += 1
            record = next(r for r in probes.call(daemon.socket, "history", limit=100)["runs"]
                          if r["run_id"] == run_id)
            assert record["status"] == "interrupted", record
        done = trigger(daemon, wait=True, full=asked_full)
        assert spool_debris(daemon.state / "spool", set()) == []
        assert destination_debris(archives) == []
        assert not list((daemon.state / "bases").rglob("*.partial"))
        assert done["status"] == "success", done
        archive = done["archive"]
        if asked_full:
            assert archive["kind"] == "full"
            base = archive["name"]
        else:
            assert (archive["kind"], archive["base"]) == ("differential", base)
        states[archive["name"]] = snapshot(data)
    records = {r["archive"]["name"]: r["archive"] for r in probes.call(daemon.socket, "history", limit=100)["runs"]
               if r["status"] == "success"}
    for name, state in states.items():
        chain = [records[name]["base"], name] if records[name]["base"] else [name]
        target = tmp_path / "restored"
        tar_restore([archives / item for item in chain], target)
        assert snapshot(target / "files") == state, name
        shutil.rmtree(target)
    figures(rounds=ROUNDS, kills=killed, backups=len(states))
    assert killed >= ROUNDS // 2
