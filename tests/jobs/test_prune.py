"""The prune action's safety rules, each through the real local destination (and real runs where a run decides)."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from backupd.config import LocalDestinationConfig, load
from backupd.config.keep import KeepPolicy
from backupd.destinations.gdrive.destination import DriveDestination
from backupd.destinations.local import LocalDestination
from backupd.jobs.actions import prune as prune_action
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.configs import directory_source, job, local_destination, write_config
from tests.destinations.helpers import gdrive_config
from tests.fakes.drive import DriveServer
from tests.jobs.plant import at_local, backup_meta, context, on_drive

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def days_back(root, count: int, job: str = "daily") -> list[str]:
    """`count` daily backups at 03:00 up to today, newest first."""
    first = NOW.replace(hour=3)
    return [at_local(root, job, first - timedelta(days=n)) for n in range(count)]


def prune_local(tmp_path, keep, **kwargs):
    ctx = context(tmp_path, keep, NOW, **kwargs)
    return prune_action.prune_one(ctx, LocalDestinationConfig(name="local", path=tmp_path / "archives")), ctx


def archives(root) -> list[str]:
    return sorted((p.name for p in root.glob("*.tar.zst")), reverse=True)


def test_what_no_rule_keeps_is_removed_and_recorded_in_the_history_and_the_log(tmp_path, caplog):
    names = days_back(tmp_path / "archives", 5)
    caplog.set_level(logging.INFO, logger="backupd.prune")
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=2))
    assert plan.error == "" and plan.removed == names[:1:-1]            # oldest first
    assert archives(tmp_path / "archives") == names[:2]
    assert not [p for p in (tmp_path / "archives").iterdir() if p.name.endswith(".meta.json")
                and p.name.removesuffix(".meta.json") not in names[:2]]   # sidecars go with their archives
    recorded = ctx.history.deletions("daily")
    assert [(d["archive"], d["destination"], d["removed_by"]) for d in recorded] == [
        (name, "local", "test") for name in names[:1:-1]]
    assert all(d["reason"] == "no rule keeps it (keep last 2)" for d in recorded)
    logged = [r for r in caplog.records if r.getMessage() == "backup pruned"]
    assert [(r.archive, r.destination, r.job) for r in logged] == [(name, "local", "daily") for name in names[:1:-1]]


def test_pruning_again_removes_nothing_more_and_records_nothing_twice(tmp_path):
    names = days_back(tmp_path / "archives", 4)
    first, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    second, _ = prune_local(tmp_path, KeepPolicy(last=1))
    assert len(first.removed) == 3 and second.removed == [] and second.error == ""
    assert len(ctx.history.deletions()) == 3
    # a deletion that already happened (another prune got there first) is not an error, nor recorded twice
    LocalDestination(LocalDestinationConfig(name="local", path=tmp_path / "archives")).delete(names[1])
    assert not ctx.history.record_deletion(names[1], "local", "daily", "test", "again")
    assert archives(tmp_path / "archives") == names[:1]


def test_the_newest_successful_backup_stays_whatever_the_policy(tmp_path):
    names = days_back(tmp_path / "archives", 3)
    plan, _ = prune_local(tmp_path, KeepPolicy(within=60))      # nothing is as young as a minute
    assert archives(tmp_path / "archives") == names[:1]
    assert plan.decisions[0].rules == ("newest successful",)


def test_the_action_refuses_to_remove_the_newest_successful_backup_even_if_the_policy_said_so(tmp_path,
                                                                                              monkeypatch):
    names = days_back(tmp_path / "archives", 3)
    real = prune_action.decide

    def keeps_nothing(*args):
        return [prune_action.Decision(d.backup, d.local, ()) for d in real(*args)]
    monkeypatch.setattr(prune_action, "decide", keeps_nothing)
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    assert archives(tmp_path / "archives") == names[:1]          # the two older ones went, the newest stayed
    assert plan.error == f"refused to remove {names[0]}: it is the newest successful backup"
    assert [d["archive"] for d in ctx.history.deletions()] == names[:0:-1]


def test_a_backup_whose_verification_failed_counts_toward_no_rule(tmp_path):
    names = days_back(tmp_path / "archives", 3)
    History(tmp_path / "state").record_check(names[0], "local", ok=False, detail="sha256 differs")
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    assert {d.backup.name: d.reason for d in plan.decisions} == {
        names[0]: "verification failed, counts toward no rule", names[1]: "newest successful, last 1",
        names[2]: "no rule keeps it"}
    assert archives(tmp_path / "archives") == [names[1]]
    assert "verification failed" in ctx.history.deletions()[-1]["reason"]


def test_a_destination_that_cannot_be_listed_prunes_nothing(tmp_path):
    (tmp_path / "archives").write_text("a file where the destination folder should be")
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    assert plan.decisions == [] and plan.removed == []
    assert plan.error.startswith("cannot list the backups, nothing pruned: local destination 'local': cannot list")
    assert ctx.history.deletions() == []


def test_foreign_files_with_look_alike_names_are_never_touched(tmp_path):
    root = tmp_path / "archives"
    names = days_back(root, 3)
    old = NOW - timedelta(days=400)
    other_host = at_local(root, "daily", old, host="otherhost")     # a second machine sharing the folder
    other_job = at_local(root, "weekly", old)
    meta, _ = backup_meta("daily", old)
    (root / meta.name).write_bytes(b"named like a backup, but no sidecar")
    renamed = root / "daily-backup-final.tar.zst"                 # a sidecar of this job and host, odd name
    renamed.write_bytes(b"x")
    (root / (renamed.name + ".meta.json")).write_text(json.dumps({**meta.__dict__, "name": renamed.name}))
    plan, _ = prune_local(tmp_path, KeepPolicy(last=1))
    assert [d.backup.name for d in plan.decisions] == names
    assert set(archives(root)) == {names[0], other_host, other_job, meta.name, renamed.name}


def run_config(tmp_path, keep, destinations=None):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "f.txt").write_text("content")
    destinations = destinations or {"local": local_destination(tmp_path / "archives")}
    return load(write_config(tmp_path, sources={"files": directory_source(data)}, destinations=destinations,
                             jobs={"main": job(["files"], list(destinations), keep=keep)}))


def run(config, cancelled: bool = False):
    job_run = Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir))
    if cancelled:
        job_run.cancel.cancel("test stop")
    return job_run.execute()


def test_a_successful_run_prunes_its_destinations(tmp_path):
    old = [at_local(tmp_path / "archives", "main", datetime.now(timezone.utc) - timedelta(days=n))
           for n in range(1, 4)]
    record = run(run_config(tmp_path, {"last": 2}))
    assert record.status == "success"
    assert archives(tmp_path / "archives") == [record.archive.name, old[0]]
    assert {d["removed_by"] for d in History(tmp_path / "state").deletions()} == {f"run {record.run_id}"}


@pytest.mark.parametrize("breaks", ["source", "cancel"])
def test_nothing_is_pruned_after_a_failed_or_interrupted_run(tmp_path, breaks):
    old = [at_local(tmp_path / "archives", "main", datetime.now(timezone.utc) - timedelta(days=n))
           for n in range(1, 4)]
    config = run_config(tmp_path, {"last": 1})
    if breaks == "source":
        (tmp_path / "data" / "f.txt").unlink()
        (tmp_path / "data").rmdir()
    record = run(config, cancelled=breaks == "cancel")
    assert record.status == ("failed" if breaks == "source" else "interrupted")
    assert archives(tmp_path / "archives") == old
    assert History(tmp_path / "state").deletions() == []


def test_nothing_is_pruned_when_a_destination_failed_to_store(tmp_path):
    good, broken = tmp_path / "archives", tmp_path / "broken"
    old = [at_local(good, "main", datetime.now(timezone.utc) - timedelta(days=n)) for n in range(1, 4)]
    broken.write_text("a file where the destination folder should be")
    config = run_config(tmp_path, {"last": 1}, destinations={"local": local_destination(good),
                                                             "broken": local_destination(broken)})
    record = run(config)
    assert record.status == "failed" and record.error.category == "destination"
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success"), ("broken", "pending-upload")]
    assert archives(good) == sorted([record.archive.name, *old], reverse=True)
    assert History(tmp_path / "state").deletions() == []


def test_a_delete_that_fails_leaves_no_removal_recorded(tmp_path):
    with DriveServer() as drive:
        config = gdrive_config(drive, drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account()))
        planting = DriveDestination(config)
        names = [on_drive(drive, planting.folder_id(), "daily", NOW - timedelta(days=n)) for n in range(3)]
        planting.close()
        before = drive.requests["api"]
        prune_action.prune_one(context(tmp_path, KeepPolicy(last=1), NOW, dry_run=True), config)
        listing = drive.requests["api"] - before
        drive.inject("sa-no-quota", on="api", nth=listing + 2)     # the oldest's DELETE, after its lookup
        plan = prune_action.prune_one(context(tmp_path, KeepPolicy(last=1), NOW), config)
        held = sorted((f.name for f in drive.files.values() if f.content is not None), reverse=True)
    assert plan.error.startswith(f"cannot remove {names[2]}: ") and plan.removed == []
    assert held == names and History(tmp_path / "state").deletions() == []
