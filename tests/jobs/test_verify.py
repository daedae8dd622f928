"""Verifying stored backups made by the real runner: ok, a flipped byte (reported, and the copy marked as
failed for retention), the spot check against the live source, and the scheduled choice of what to verify."""
from __future__ import annotations

import os
import random

import pytest

from backupd.config import load
from backupd.destinations.local import LocalDestination
from backupd.jobs.history import History
from backupd.jobs.locate import locate
from backupd.jobs.runner import Run
from backupd.jobs.verify import Sampler, verify_backup
from backupd.jobs.verify_job import choose, verify_job
from backupd.jobs.verify_record import VerifyStatus
from tests.configs import command_source, directory_source, job, local_destination, write_config


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for index in range(20):
        (data / "sub" / f"f{index:02d}.txt").write_text(f"file {index}\n" * 50)
    (data / "big.bin").write_bytes(os.urandom(2 << 20))
    sources = {"files": directory_source(data), "cmd": command_source(["echo", "hi"])}
    config = load(write_config(tmp_path, sources=sources,
                               destinations={"disk": local_destination(tmp_path / "disk")},
                               jobs={"main": job(["files", "cmd"], ["disk"])}))
    history = History(config.daemon.state_dir)
    yield config, history, data
    history.close()


def backup(config, history):
    record = Run(config=config, job=config.jobs["main"], history=history, trigger="manual").execute()
    assert record.status == "success", record.error
    return record


def found_of(config, history, text="latest:main"):
    return locate(text, config, history.runs(), lambda: iter(()))


def test_a_good_copy_verifies_and_is_recorded(setup):
    config, history, _ = setup
    run = backup(config, history)
    record = verify_backup(found_of(config, history), config, config.daemon.state_dir)
    assert (record.status, record.destination, record.run_id, record.kind) == ("success", "disk", run.run_id, "verify")
    assert record.sha256 == run.archive.sha256 and record.members == run.archive.members
    history.save_verification(record)
    assert [v.verify_id for v in history.verifications("main")] == [record.verify_id]
    assert history.failed_checks("disk") == set()


def test_one_flipped_byte_fails_names_what_differs_and_marks_the_copy(setup, tmp_path):
    config, history, _ = setup
    run = backup(config, history)
    stored = tmp_path / "disk" / run.archive.name
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(data)
    record = verify_backup(found_of(config, history), config, config.daemon.state_dir)
    assert record.status == VerifyStatus.FAILED
    assert record.problems[0].startswith("archive sha256 is ") and run.archive.sha256 in record.problems[0]
    assert any("files/big.bin" in problem for problem in record.problems[1:]), record.problems
    history.save_verification(record)
    assert history.failed_checks("disk") == {run.archive.name}
    good = verify_backup(found_of(config, history), config, config.daemon.state_dir)   # still bad: stays marked
    history.save_verification(good)
    assert history.failed_checks("disk") == {run.archive.name}


def test_against_source_counts_changed_missing_unchanged_and_flags_same_mtime_changes(setup):
    config, history, data = setup
    backup(config, history)
    (data / "sub/f00.txt").write_text("rewritten\n")
    os.unlink(data / "sub/f01.txt")
    same = data / "sub/f02.txt"
    before = same.stat()
    same.write_text(same.read_text().replace("file", "FILE"))       # same size
    os.utime(same, ns=(before.st_atime_ns, before.st_mtime_ns))     # and the mtime it was archived with
    record = verify_backup(found_of(config, history), config, config.daemon.state_dir, sample=1000)
    source = record.against_source
    assert (source["sampled"], source["changed"], source["missing"]) == (21, 1, 1)
    assert source["unchanged"] == 18 and source["not_compared"] == ["cmd"]
    assert source["suspicious"] == ["files/sub/f02.txt"]
    assert record.status == "failed" and record.problems == [
        "differs from the live source though its size and mtime are unchanged: files/sub/f02.txt"]


def test_the_sample_is_uniform_and_bounded(setup):
    config, _, _ = setup
    sampler = Sampler(config, ["files", "cmd"], 5, random.Random(7))
    from backupd.restore.reader import Member
    for index in range(1000):
        sampler(Member(f"files/x{index}", "file", 0o644, 0, 0, 0, 1, sha256="00"))
    sampler(Member("cmd/out.txt", "file", 0o644, 0, 0, 0, 1, sha256="00"))
    sampler(Member("files/dir", "dir", 0o755, 0, 0, 0, 0))
    names = [entry.name for entry in sampler.chosen]
    assert len(names) == 5 and len(set(names)) == 5 and sampler.seen == 1000
    assert all(name.startswith("files/x") for name in names)
    assert max(int(name[7:]) for name in names) > 100       # not just the first files seen


def test_scheduled_verification_takes_the_newest_and_rotates_through_the_rest(setup):
    config, history, _ = setup
    for _ in range(3):
        backup(config, history)
    names = [b.name for b in LocalDestination(config.destinations["disk"]).list("main")]    # newest first
    first = verify_job("main", config, history)
    assert [r.archive for r in first] == [names[0], names[2]] and all(r.ok for r in first)
    second = verify_job("main", config, history)
    assert [r.archive for r in second] == [names[0], names[1]]
    assert [r.trigger for r in history.verifications("main")] == ["schedule"] * 4


def test_a_destination_that_cannot_list_is_an_error_not_a_failure(setup, tmp_path):
    config, history, _ = setup
    backup(config, history)
    os.rename(tmp_path / "disk", tmp_path / "disk-moved")
    (tmp_path / "disk").write_text("a file where the folder was")
    records = verify_job("main", config, history)
    assert [(r.status, r.destination) for r in records] == [("error", "disk")]
    assert records[0].problems[0].startswith("could not list the backups: local destination 'disk'")
    assert history.failed_checks("disk") == set()


def test_choose_orders_never_verified_first_then_longest_ago():
    backups = [type("B", (), {"name": n, "created": c})() for n, c in
               (("d", "4"), ("c", "3"), ("b", "2"), ("a", "1"))]
    assert [b.name for b in choose(backups, {})] == ["d", "a"]
    assert [b.name for b in choose(backups, {"a": "2024-02", "b": "2024-01", "c": "2024-03"})] == ["d", "b"]
    assert [b.name for b in choose(backups, {"a": "2024-02", "b": "2024-01"})] == ["d", "c"]
    assert choose([], {}) == []
