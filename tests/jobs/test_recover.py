"""A kill just after a destination stored the archive, or later (issue 9, defect 4): at the next start the run
is reconciled with what its destinations hold, its record says so, and nothing is stored twice or lost."""
from __future__ import annotations

import pytest

from backupd.config import load
from backupd.destinations.gdrive.destination import DriveDestination
from backupd.jobs.actions import recover
from backupd.jobs.actions.recover import recover_at_start
from backupd.jobs.history import History
from backupd.jobs.result import RunRecord
from backupd.jobs.runner import Run
from backupd.jobs.spool import Spool
from tests.configs import directory_source, job, local_destination, write_config
from tests.destinations.helpers import TEST_SETTINGS
from tests.fakes.drive import DriveServer
from tests.jobs.interrupt import killed_after_storing, killed_while_pruning


def two_destination_config(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("content")
    return load(write_config(tmp_path, sources={"files": directory_source(data)},
                             destinations={"local": local_destination(tmp_path / "archives"),
                                           "second": local_destination(tmp_path / "second")},
                             jobs={"main": job(["files"], ["local", "second"])}))


def test_an_archive_stored_everywhere_before_the_kill_is_recorded_as_stored(tmp_path):
    config = two_destination_config(tmp_path)
    run_id = killed_after_storing(config, stores=2)
    history = History(config.daemon.state_dir)
    assert history.get(run_id).status == "running" and history.get(run_id).archive is not None

    assert recover_at_start(config, history) == [run_id]
    record = history.get(run_id)
    assert record.status == "success" and record.error is None and record.ended is not None
    assert "stopped after the archive was stored" in record.note and "local, second" in record.note
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success"), ("second", "success")]
    assert record.destinations[0].location == str(tmp_path / "archives" / record.archive.name)
    assert history.pending() == []


def test_an_archive_stored_on_one_of_two_is_uploaded_to_the_other_by_the_next_run(tmp_path):
    config = two_destination_config(tmp_path)
    run_id = killed_after_storing(config, stores=1)
    history = History(config.daemon.state_dir)

    recover_at_start(config, history)
    record = history.get(run_id)
    assert record.status == "interrupted" and record.ended is not None
    assert "found on: local" in record.error.message
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success"),
                                                                  ("second", "pending-upload")]
    assert [p["destination"] for p in history.pending("main")] == ["second"]

    nxt = Run(config=config, job=config.jobs["main"], history=history).execute()
    assert nxt.status == "success", nxt.error
    assert (tmp_path / "second" / record.archive.name).exists()
    assert history.pending() == []


def test_only_a_run_still_interrupted_after_recovery_owes_its_failure_alert(tmp_path):
    config = two_destination_config(tmp_path)
    everywhere, partly = killed_after_storing(config, stores=2), killed_after_storing(config, stores=1)
    history = History(config.daemon.state_dir)
    assert sorted(recover_at_start(config, history)) == sorted([everywhere, partly])
    assert history.owed_alerts() == [partly]            # the one stored everywhere failed nothing
    history.alert_delivered(partly)
    assert history.owed_alerts() == []


@pytest.fixture
def drive():
    with DriveServer() as server:
        yield server


def local_and_drive_config(tmp_path, drive):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("content")
    credentials = drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account())
    gdrive = {"type": "gdrive", "credentials": str(credentials), "endpoint": drive.url, **TEST_SETTINGS}
    return load(write_config(tmp_path, sources={"files": directory_source(data)},
                             destinations={"local": local_destination(tmp_path / "archives"), "drive": gdrive},
                             jobs={"main": job(["files"], ["local", "drive"])}))


def drive_holds(drive, name: str) -> bool:
    return any(f.name == name and f.content is not None for f in drive.files.values())


def killed_with_only_local_saved(config) -> tuple[History, RunRecord]:
    """A run killed while pruning whose record, as if killed before the Drive's result was saved, has only
    the local destination's; (its history, the record)."""
    run_id = killed_while_pruning(config)
    history = History(config.daemon.state_dir)
    killed = history.get(run_id)
    killed.destinations = killed.destinations[:1]
    history.save(killed)
    return history, killed


def test_a_kill_after_the_spool_copy_was_dropped_keeps_the_drive_recorded_as_stored(tmp_path, drive):
    config = local_and_drive_config(tmp_path, drive)
    run_id = killed_while_pruning(config)
    history = History(config.daemon.state_dir)
    killed = history.get(run_id)
    assert killed.status == "running" and [(d.name, d.status) for d in killed.destinations] == [
        ("local", "success"), ("drive", "success")]      # saved as each store finished
    assert not Spool(config.daemon.state_dir).final_path(killed.archive.name).exists()
    assert drive_holds(drive, killed.archive.name)

    assert recover_at_start(config, history) == [run_id]
    record = history.get(run_id)
    assert record.status == "success" and record.error is None and history.owed_alerts() == []
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success"), ("drive", "success")]
    assert record.destinations[1].file_id == killed.destinations[1].file_id
    assert "found stored on local, drive (local, drive recorded by the run as its store finished)" in record.note


def test_a_result_the_run_did_not_save_is_asked_of_the_drive_when_the_spool_copy_is_gone(tmp_path, drive):
    config = local_and_drive_config(tmp_path, drive)
    history, killed = killed_with_only_local_saved(config)
    listed = drive.requests["api"]

    recover_at_start(config, history)
    record = history.get(killed.run_id)
    assert drive.requests["api"] > listed               # the Drive was listed at start
    assert record.status == "success" and record.destinations[1].status == "success"
    assert record.destinations[1].location.startswith("gdrive://")
    assert "local recorded by the run as its store finished; drive with the same sha256 at the next start" in (
        record.note)


def test_a_drive_that_cannot_be_asked_at_start_is_recorded_unknown_not_unstored(tmp_path, drive, monkeypatch):
    config = local_and_drive_config(tmp_path, drive)
    history, killed = killed_with_only_local_saved(config)
    drive.stop()                                        # refuses connections: each retry waits longer
    monkeypatch.setattr(recover, "CHECK_TIMEOUT", 0.5)  # shorter than the destination's own retry_deadline

    recover_at_start(config, history)
    record = history.get(killed.run_id)
    assert record.status == "interrupted" and history.owed_alerts() == [killed.run_id]
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success"), ("drive", "unknown")]
    assert record.destinations[1].error == "unknown: could not check drive at start: no answer within 0.5s"
    assert "found on: local; could not check: drive" in record.error.message
    assert recover.NOT_STORED not in record.error.message + record.destinations[1].error


def test_a_drive_that_answers_without_the_archive_records_it_not_stored(tmp_path, drive):
    config = local_and_drive_config(tmp_path, drive)
    history, killed = killed_with_only_local_saved(config)
    gone = DriveDestination(config.destinations["drive"])
    gone.delete(killed.archive.name)
    gone.close()

    recover_at_start(config, history)
    record = history.get(killed.run_id)
    assert [(d.name, d.status, d.error) for d in record.destinations][1] == ("drive", "failed", recover.NOT_STORED)
