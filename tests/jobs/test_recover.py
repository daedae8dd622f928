"""A kill just after a destination stored the archive (issue 9, defect 4): at the next start the run is
reconciled with what its destinations hold, its record says so, and nothing is stored twice or lost."""
from __future__ import annotations

from backupd.config import load
from backupd.jobs.actions.recover import recover_at_start
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.configs import directory_source, job, local_destination, write_config
from tests.jobs.interrupt import killed_after_storing


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
