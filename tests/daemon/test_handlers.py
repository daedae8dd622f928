"""The daemon's commands as backupctl and the client see them, from a real daemon: each listed backup's kind, its
full and its set's size (backups stored by the real local destination), and trigger --full reaching the run."""
from __future__ import annotations

import errno
import hashlib
import os

import pytest

from backupd.client import Client, RemoteError
from backupd.config import load
from backupd.destinations import registry
from backupd.destinations.base import ArchiveMeta
from tests.configs import command_source, directory_source, job, local_destination, write_config
from tests.e2e.daemon_harness import Daemon
from tests.waiting import wait_for

FULL = "sets-host-20240501T030000Z-aaaa1111.tar.zst"
DIFFS = ("sets-host-20240502T030000Z-bbbb2222-diff-aaaa1111.tar.zst",
         "sets-host-20240503T030000Z-cccc3333-diff-aaaa1111.tar.zst")
UNNAMED_FULL = "sets-host-20240601T030000Z-dddd4444.tar.zst"           # its sidecar has no run id
UNNAMED_DIFF = "sets-host-20240602T030000Z-eeee5555-diff-dddd4444.tar.zst"
# destination -> (name, run id, bytes) stored there; "other" misses the full of DIFFS[1]
STORED = {"local": [(FULL, "aaaa1111ffff", 3000), (DIFFS[0], "bbbb2222ffff", 300), (DIFFS[1], "cccc3333ffff", 200)],
          "other": [(DIFFS[1], "cccc3333ffff", 200), (UNNAMED_FULL, "", 1000), (UNNAMED_DIFF, "eeee5555ffff", 50)]}


def store(config, destination: str, name: str, run_id: str, size: int, scratch) -> None:
    data = os.urandom(size)
    (scratch / name).write_bytes(data)
    target = registry.build(config.destinations[destination], config.daemon.state_dir)
    target.store(scratch / name, ArchiveMeta(name=name, job="sets", run_id=run_id, host="host", size=size,
                                             sha256=hashlib.sha256(data).hexdigest(), created=name[10:26]))
    target.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("handlers")
    (base / "data").mkdir()
    (base / "data" / "notes.txt").write_bytes(os.urandom(20_000))
    os.mkfifo(base / "gate")
    path = write_config(base, jobs={"sets": job(["files"], ["local", "other"], differential=True),
                                    "slow": job(["slow"], schedule="0 4 * * *")},
                        sources={"files": directory_source(base / "data"),
                                 "slow": command_source(["cat", str(base / "gate")])},
                        destinations={"local": local_destination(base / "archives"),
                                      "other": local_destination(base / "other")})
    (base / "scratch").mkdir()
    config = load(path)
    for destination, backups in STORED.items():
        for name, run_id, size in backups:
            store(config, destination, name, run_id, size, base / "scratch")
    started = Daemon(base, path).start()
    yield started
    started.stop()


def test_list_gives_each_backup_its_kind_its_full_and_its_sets_size_so_far(daemon):
    listed = daemon.ctl_json("list", "--job", "sets")
    found = {(item["destination"], item["name"]): item for item in listed["backups"]}
    assert sorted(found) == sorted((where, name) for where, backups in STORED.items() for name, _, _ in backups)
    assert {key: item["kind"] for key, item in found.items()} == {
        key: "differential" if "-diff-" in key[1] else "full" for key in found}
    sets = {key: (item.get("base"), item.get("base_run"), item.get("set_size")) for key, item in found.items()}
    assert sets == {("local", FULL): (None, None, 3000), ("local", DIFFS[0]): (FULL, "aaaa1111", 3300),
                    ("local", DIFFS[1]): (FULL, "aaaa1111", 3500), ("other", DIFFS[1]): (None, "aaaa1111", None),
                    ("other", UNNAMED_FULL): (None, None, 1000),
                    ("other", UNNAMED_DIFF): (UNNAMED_FULL, "dddd4444", 1050)}
    text = daemon.ctl("list", "--job", "sets", check=True).stdout.splitlines()
    assert f"set {FULL} at local: full + 2 differentials, 3.4 KiB in all" in text
    assert f"set {UNNAMED_FULL} at other: full + 1 differential, 1.0 KiB in all" in text
    assert (f"warning: {DIFFS[1]} at other: its full (run aaaa1111) is not there; it cannot be restored "
            "without it") in text


def test_the_client_lists_kinds_and_sets_as_typed_fields(daemon):
    listing = Client(daemon.socket, timeout=30).list_backups(job="sets", destination="local")
    by_name = {backup.name: backup for backup in listing.backups}
    assert by_name[DIFFS[1]].differential and by_name[DIFFS[1]].base == FULL and by_name[DIFFS[1]].set_size == 3500
    assert by_name[FULL].kind == "full" and not by_name[FULL].differential and by_name[FULL].base_run == ""
    assert by_name[DIFFS[0]].to_dict()["base_run"] == "aaaa1111"


def test_status_says_which_jobs_are_differential(daemon):
    jobs = {job["name"]: job for job in daemon.ctl_json("status")["jobs"]}
    assert (jobs["sets"]["differential"], jobs["slow"]["differential"]) == (True, False)


def open_gate(gate) -> bool:
    """Write to the slow job's fifo once its command reads it (ENXIO until then); True when written."""
    try:
        fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise
    os.write(fd, b"done\n")
    os.close(fd)
    return True


def idle(daemon, name: str) -> bool:
    return next(job for job in daemon.ctl_json("status")["jobs"] if job["name"] == name)["running"] is None


def test_trigger_full_reaches_the_run_and_a_joined_run_says_it_was_not_asked_for_one(daemon):
    first = daemon.ctl_json("trigger", "slow")
    assert (first["started"], first["full"]) == (True, False) and "note" not in first
    joined = daemon.ctl_json("trigger", "slow", "--full")
    assert (joined["run_id"], joined["started"], joined["full"]) == (first["run_id"], False, False)
    assert joined["note"] == "the run going on was not asked for a new full: ask again once it ended"
    wait_for(lambda: open_gate(daemon.dir / "gate"), what="the slow job's command reading its fifo")
    wait_for(lambda: idle(daemon, "slow"), what="the slow run's end")
    full = daemon.ctl_json("trigger", "sets", "--full")
    assert (full["started"], full["full"]) == (True, True)
    logged = [line for line in daemon.log_lines() if line.get("message") == "trigger"]
    assert [(line["run_id"], line["full"]) for line in logged][-3:] == [
        (first["run_id"], False), (first["run_id"], False), (full["run_id"], True)]
    wait_for(lambda: idle(daemon, "sets"), what="the full run's end")


def test_full_with_upload_pending_is_refused_by_the_daemon_too(daemon):
    with pytest.raises(RemoteError) as refused:
        Client(daemon.socket, timeout=30).trigger("sets", full=True, upload_pending=True)
    assert (refused.value.code, refused.value.message) == (
        "bad_args", "full and upload_pending do not go together: upload_pending makes no backup")
    assert idle(daemon, "sets")
    with pytest.raises(RemoteError, match="argument 'full' must be true or false or null, not a string"):
        Client(daemon.socket, timeout=30).request("trigger", {"job": "sets", "full": "yes"})


def test_real_runs_of_a_differential_job_show_their_set_and_trigger_full_makes_a_full(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big").write_bytes(os.urandom(200_000))
    path = write_config(tmp_path, jobs={"sets": job(["files"], differential=True)},
                        daemon={"metrics_file": str(tmp_path / "backupd.prom")})
    daemon = Daemon(tmp_path, path).start()
    try:
        first = daemon.ctl_json("trigger", "--wait")["archive"]
        (tmp_path / "data" / "new").write_bytes(b"changed since the full")
        second = daemon.ctl_json("trigger", "--wait")["archive"]
        assert (first["kind"], second["kind"], second["base"]) == ("full", "differential", first["name"])
        assert second["set_size"] == first["size"] + second["size"]
        listed = {item["name"]: item for item in daemon.ctl_json("list")["backups"]}
        assert (listed[second["name"]]["base"], listed[second["name"]]["set_size"]) == (first["name"],
                                                                                         second["set_size"])
        status = daemon.ctl("status", check=True).stdout
        assert f"sets: last backup a differential of {first['name']}, set " in status
        expected = (f'backupd_last_set_bytes{{job="sets"}} {float(second["set_size"])}',
                    'backupd_last_backup_kind{job="sets",kind="differential"} 1.0')
        wait_for(lambda: all(line in (tmp_path / "backupd.prom").read_text().splitlines() for line in expected),
                 what="the metrics file rewritten after the differential")
        asked = daemon.ctl_json("trigger", "--full", "--wait")["archive"]
        assert (asked["kind"], asked["base"], asked["set_size"]) == ("full", "", asked["size"])
        assert "sets: last backup a full (a new set)" in daemon.ctl("status", check=True).stdout
    finally:
        daemon.stop()
