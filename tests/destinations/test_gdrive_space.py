"""Space on Drive: an upload that cannot fit the quota fails before a byte is sent, `trash = true` moves pruned
backups to the trash, and a listing that fails midway lets pruning remove nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backupd.config.keep import KeepPolicy
from backupd.destinations.base import DestinationError
from backupd.destinations.gdrive import destination as drive_destination
from backupd.destinations.gdrive.destination import DriveDestination
from backupd.jobs.actions.prune import prune_one
from tests.destinations.helpers import gdrive_config, make_archive
from tests.jobs.plant import context, on_drive


def test_an_archive_larger_than_the_free_quota_fails_before_uploading(drive, gdrive, tmp_path, archive):
    gdrive.store(*make_archive(tmp_path, 5000, name="nightly-old.tar.zst"))
    path, meta = archive
    drive.state.quota_limit = 5000 + meta.size - 1        # one byte short
    sessions, received = drive.count("start"), drive.bytes_received
    with pytest.raises(DestinationError) as failed:
        gdrive.store(path, meta)
    assert failed.value.kind == "quota" and failed.value.permanent
    message = str(failed.value)
    assert f"needs 513.0 KiB ({meta.size} bytes)" in message
    assert f"{meta.size - 1} bytes: 5000 of {5000 + meta.size - 1} used" in message
    assert (drive.count("start"), drive.bytes_received) == (sessions, received)     # not one byte sent
    assert [b.name for b in gdrive.list()] == ["nightly-old.tar.zst"]


def test_an_archive_that_just_fits_is_uploaded(drive, gdrive, archive):
    path, meta = archive
    drive.state.quota_limit = meta.size
    assert gdrive.store(path, meta).size == meta.size
    assert drive.count("about") == 1


def test_without_a_limit_or_on_a_shared_drive_nothing_is_checked(drive, sa_file, gdrive, tmp_path, archive):
    gdrive.store(*archive)                                # no limit reported: unlimited
    drive.state.quota_limit = 1                           # a shared drive has no quota of its own to ask
    shared = DriveDestination(gdrive_config(drive, sa_file, shared_drive_id=drive.add_shared_drive()),
                              retry_base=0.01)
    try:
        shared.store(*make_archive(tmp_path, 4000, name="nightly-shared.tar.zst"))
    finally:
        shared.close()
    assert drive.count("about") == 1 and len(drive.files) > 2


@pytest.mark.parametrize("trash", [False, True])
def test_delete_removes_for_good_or_moves_to_the_trash(drive, sa_file, archive, trash):
    path, meta = archive
    destination = DriveDestination(gdrive_config(drive, sa_file, trash=trash), retry_base=0.01)
    try:
        stored = destination.store(path, meta)
        destination.delete(meta.name)
        destination.delete(meta.name)                     # idempotent either way
        assert destination.list() == []
    finally:
        destination.close()
    if trash:
        assert drive.files[stored.file_id].trashed
        assert drive.state.storage_quota()["usageInDriveTrash"] == str(meta.size)   # still counted
    else:
        assert stored.file_id not in drive.files


def test_a_listing_that_fails_on_its_second_page_prunes_nothing(drive, sa_file, gdrive, tmp_path, monkeypatch):
    monkeypatch.setattr(drive_destination, "PAGE_SIZE", 2)
    folder = gdrive.folder_id()
    start = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
    names = [on_drive(drive, folder, "daily", start + timedelta(days=n)) for n in range(5)]
    # a fresh destination: 2 folder look-ups, then the listing's pages; the second page is refused
    drive.inject("not-found", on="api", nth=4)
    plan = prune_one(context(tmp_path, KeepPolicy(last=1), start + timedelta(days=6)),
                     gdrive_config(drive, sa_file, retry_deadline=0.5))
    assert drive.faults.fired == 1
    assert plan.error.startswith("cannot list the backups, nothing pruned: ")
    assert plan.decisions == [] and plan.removed == []
    assert sorted(b.name for b in gdrive.list()) == sorted(names)
