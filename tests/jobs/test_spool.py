"""The spool's bound (daemon.spool_max drops the job's oldest pending archive, never its newest, recorded lost),
uploads that failed permanently waiting for a reload or --upload-pending, and a Drive quota too small."""
from __future__ import annotations

import logging

from backupd.config import load
from backupd.jobs.actions import spooled
from backupd.jobs.history import History
from backupd.jobs.runner import Action, Run
from backupd.jobs.spool import Spool
from tests.configs import directory_source, job, local_destination, write_config
from tests.destinations.helpers import TEST_SETTINGS
from tests.fakes.drive import DriveServer


def make_config(tmp_path, destination=None, **daemon):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "f.txt").write_text("content " * 100)
    destinations = {"dest": destination or local_destination(tmp_path / "archives")}
    return load(write_config(tmp_path, daemon=daemon, sources={"files": directory_source(data)},
                             destinations=destinations, jobs={"main": job(["files"], ["dest"])}))


def run(config, action=Action.BACKUP):
    return Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir),
               action=action).execute()


def spooled_names(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "state" / "spool").glob("*.tar.zst"))


def test_over_spool_max_the_oldest_pending_archive_is_dropped_and_recorded_lost(tmp_path, caplog):
    (tmp_path / "archives").write_text("a file where the destination folder should be")
    config = make_config(tmp_path, spool_max=1)          # smaller than any archive
    caplog.set_level(logging.WARNING, logger="backupd.spool")
    first = run(config)
    assert spooled_names(tmp_path) == [first.archive.name]      # the newest is never dropped, however big
    second, third = run(config), run(config)
    assert spooled_names(tmp_path) == [third.archive.name]
    history = History(tmp_path / "state")
    assert [p["archive"] for p in history.pending()] == [third.archive.name]
    for dropped, by in ((first, second), (second, third)):
        stored = history.get(dropped.run_id).destinations[0]
        assert stored.status == "lost" and "over daemon.spool_max (1 B)" in stored.error
        assert history.get(by.run_id).note == (f"dropped {dropped.archive.name} from the full spool: lost at dest, "
                                                "no destination holds it")
    errors = [r for r in caplog.records if r.getMessage() == "pending archive dropped from the spool"]
    assert [(r.levelname, r.archive, r.lost_at) for r in errors] == [
        ("ERROR", first.archive.name, ["dest"]), ("ERROR", second.archive.name, ["dest"])]


def test_a_permanent_failure_waits_for_upload_pending_not_for_the_next_run(tmp_path):
    (tmp_path / "archives").write_text("a file where the destination folder should be")
    config = make_config(tmp_path)
    failed = run(config)
    spool = Spool(tmp_path / "state")
    [waiting] = spooled.waiting(History(tmp_path / "state"), spool)
    assert waiting["archive"] == failed.archive.name and waiting["destinations"][0]["held"]
    assert waiting["destinations"][0]["why"].startswith("failed permanently (local destination 'dest': cannot write")
    assert waiting["destinations"][0]["why"].endswith("retried after a reload or `backupctl trigger main "
                                                      "--upload-pending`")
    (tmp_path / "archives").unlink()                      # the operator fixes the destination
    later = run(config)
    assert later.status == "success" and [d.name for d in later.destinations] == ["dest"]   # not retried
    assert spooled_names(tmp_path) == [failed.archive.name]
    retried = run(config, Action.UPLOAD_PENDING)
    assert retried.status == "success" and retried.destinations[0].name == f"dest (pending from run {failed.run_id})"
    assert spooled_names(tmp_path) == [] and (tmp_path / "archives" / failed.archive.name).exists()


def test_after_a_reload_the_next_run_retries_what_failed_permanently(tmp_path):
    (tmp_path / "archives").write_text("a file where the destination folder should be")
    config = make_config(tmp_path)
    failed = run(config)
    (tmp_path / "archives").unlink()
    assert History(tmp_path / "state").release_held() == 1      # what a reload does
    [waiting] = spooled.waiting(History(tmp_path / "state"), Spool(tmp_path / "state"))
    assert waiting["destinations"][0] == {"destination": "dest", "held": False, "why": "retried at the next run"}
    later = run(config)
    assert [(d.name, d.status) for d in later.destinations] == [
        ("dest", "success"), (f"dest (pending from run {failed.run_id})", "success")]
    assert spooled_names(tmp_path) == []


def test_a_drive_too_full_for_the_archive_fails_fast_and_keeps_it_in_the_spool(tmp_path):
    with DriveServer() as drive:
        credentials = drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account())
        drive.state.quota_limit = 100
        config = make_config(tmp_path, {"type": "gdrive", "credentials": str(credentials), "endpoint": drive.url,
                                        **TEST_SETTINGS})
        record = run(config)
        assert drive.count("start") == 0 and all(f.content is None for f in drive.files.values())   # folders only
    assert record.status == "failed" and (record.error.category, record.error.kind) == ("destination", "quota")
    assert f"({record.archive.size} bytes) but the Drive account has 100 B free (100 bytes: 0 of 100 used" in (
        record.error.message)
    assert spooled_names(tmp_path) == [record.archive.name]
    assert list(History(tmp_path / "state").held()) == [(record.archive.name, "dest")]
