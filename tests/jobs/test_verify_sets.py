"""Verification of a differential (in-process runs through the real writer, local destination): the
members it holds, its sha256, and its full (named, present, with the sha256 it was made against); the
spot check against the live source samples the complete state."""
from __future__ import annotations

import shutil

import pytest

from backupd.jobs.history import History
from backupd.jobs.locate import Located
from backupd.jobs.verify import verify_backup
from backupd.jobs.verify_job import verify_job
from tests.jobs.test_sets import build_tree, change_tree, configure, run

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


@pytest.fixture
def backups(tmp_path):
    config = configure(tmp_path)
    runs = []
    for step in (build_tree, change_tree):
        step(tmp_path / "data")
        runs.append(run(config))
    assert [record.archive.kind for record in runs] == ["full", "differential"]
    return config, *runs


def located(record, **changes) -> Located:
    archive = record.archive
    fields = dict(name=archive.name, job=record.job, run_id=record.run_id, sha256=archive.sha256, size=archive.size,
                  destinations=("local",), base=archive.base, base_sha256=archive.base_sha256,
                  base_size=archive.base_size)
    return Located(**{**fields, **changes})


def test_a_differential_verifies_with_its_full_named(backups):
    config, full, differential = backups
    record = verify_backup(located(differential), config, config.daemon.state_dir)
    assert record.ok, record.problems
    assert record.base == full.archive.name and record.sha256 == differential.archive.sha256
    assert record.members == differential.archive.members      # the members it holds


def test_a_full_of_another_sha256_fails_the_differential(backups):
    config, _, differential = backups
    record = verify_backup(located(differential, base_sha256="0" * 64), config, config.daemon.state_dir)
    assert record.status == "failed"
    assert record.problems == [f"its full {differential.archive.base} has sha256 {'0' * 64}, the differential was "
                               f"made against {differential.archive.base_sha256}"]


def test_a_corrupted_differential_fails(backups, tmp_path):
    config, _, differential = backups
    path = tmp_path / "archives" / differential.archive.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    record = verify_backup(located(differential), config, config.daemon.state_dir)
    assert record.status == "failed"
    assert record.problems[0].startswith("archive sha256 is ")


def test_the_scheduled_verification_fails_a_differential_whose_full_is_gone(backups, tmp_path):
    config, full, differential = backups
    history = History(config.daemon.state_dir)
    try:
        records = verify_job("main", config, history)
        assert {(r.archive, r.status) for r in records} == {(differential.archive.name, "success"),
                                                           (full.archive.name, "success")}
        (tmp_path / "archives" / full.archive.name).unlink()
        (tmp_path / "archives" / f"{full.archive.name}.meta.json").unlink()
        records = verify_job("main", config, history)
        assert [(r.archive, r.status) for r in records] == [(differential.archive.name, "failed")]
        assert records[0].problems == [f"its full {full.archive.name} is not at local: it cannot be restored "
                                       "from there"]
        saved = [v for v in history.verifications("main") if v.verify_id == records[0].verify_id]
        assert records[0].base == saved[0].base == full.archive.name
    finally:
        history.close()


def test_against_the_source_a_differential_samples_its_complete_state(backups, tmp_path):
    config, _, differential = backups
    record = verify_backup(located(differential), config, config.daemon.state_dir, sample=1000)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and not p.is_symlink()]
    assert record.ok, record.problems
    assert record.against_source["sampled"] == len(files) == record.against_source["unchanged"]
    (tmp_path / "data" / "keep.bin").write_bytes(b"changed since")      # kept from the full: sampled too
    record = verify_backup(located(differential), config, config.daemon.state_dir, sample=1000)
    assert record.against_source["changed"] == 1
