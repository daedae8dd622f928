"""One run, in-process: outcome records, cleanup, and what a stop that cannot wait leaves behind."""
from __future__ import annotations

from dataclasses import replace

from backupd.config import load
from backupd.jobs import notify
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.configs import directory_source, write_config


def make_run(tmp_path, data=None) -> Run:
    data = data or tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "f.txt").write_text("content")
    config = load(write_config(tmp_path, sources={"files": directory_source(data)}))
    return Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir))


def test_successful_run_records_archive_and_destination(tmp_path):
    record = make_run(tmp_path).execute()
    assert record.status == "success" and record.error is None
    assert record.archive.size > 0 and len(record.archive.sha256) == 64
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success")]
    assert (tmp_path / "archives" / record.archive.name).exists()
    assert not list((tmp_path / "state" / "spool").iterdir())


def test_missing_source_fails_with_source_category_and_keeps_nothing(tmp_path):
    run = make_run(tmp_path)
    (tmp_path / "data" / "f.txt").unlink()
    (tmp_path / "data").rmdir()
    record = run.execute()
    assert record.status == "failed" and record.error.category == "source"
    assert str(tmp_path / "data") in record.error.message
    assert not (tmp_path / "archives").exists()
    assert not list((tmp_path / "state" / "spool").iterdir())


def test_cancelled_run_is_interrupted_and_leaves_nothing(tmp_path):
    run = make_run(tmp_path)
    run.cancel.cancel("test stop")
    record = run.execute()
    assert record.status == "interrupted"
    assert not (tmp_path / "archives").exists() or not list((tmp_path / "archives").iterdir())
    assert not list((tmp_path / "state" / "spool").iterdir())


def test_abandoned_run_is_recorded_and_its_temporary_files_removed(tmp_path):
    run = make_run(tmp_path)
    run.spool.partial_path(run.archive_name).write_bytes(b"half an archive")
    run.spool.workdir(run.run_id)
    run.abandon()
    assert not list((tmp_path / "state" / "spool").iterdir())
    stored = History(tmp_path / "state").get(run.run_id)
    assert stored.status == "interrupted" and "safe point" in stored.error.message


def test_an_abandoned_run_owes_its_alert_and_ends_without_a_record_or_notice_of_its_own(tmp_path):
    run = make_run(tmp_path)
    run.job = replace(run.job, on_failure=("sh", "-c", f"echo sent >> {tmp_path / 'alerts'}"))
    assert run.abandon()
    run.cancel.cancel("the daemon is stopping")
    run.execute()                                       # its thread going on after the daemon let it go
    assert notify.drain(30) and not (tmp_path / "alerts").exists()
    history = History(tmp_path / "state")
    assert "safe point" in history.get(run.run_id).error.message and history.owed_alerts() == [run.run_id]


def test_a_run_that_ended_is_not_abandoned(tmp_path):
    run = make_run(tmp_path)
    run.execute()
    assert not run.abandon()
    history = History(tmp_path / "state")
    assert history.get(run.run_id).status == "success" and history.owed_alerts() == []
