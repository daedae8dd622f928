"""Uploads of a 21-chunk archive to the loopback Drive under injected faults: transient faults are
retried and resume from Drive's offset (at most one chunk sent again per fault); permanent ones fail fast."""
from __future__ import annotations

import time

import pytest

from backupd.cancel import CancelToken, Cancelled
from backupd.destinations.base import DestinationError
from backupd.destinations.gdrive.destination import DriveDestination
from tests.destinations.helpers import CHUNK, gdrive_config
from tests.fakes.drive import DriveServer

TRANSIENT = [  # (fault, request category, delay)
    ("503", "chunk", 0), ("500", "chunk", 0), ("429", "chunk", 0), ("rate-limit", "chunk", 0),
    ("drop", "chunk", 0), ("no-range", "chunk", 0), ("401", "chunk", 0), ("slow", "chunk", 0.2),
    ("slow", "chunk", 1.5),          # longer than the 0.5 s socket timeout: the client gives up, resumes
    ("503", "start", 0), ("401", "start", 0), ("503", "api", 0), ("rate-limit", "api", 0),
    ("503", "token", 0), ("drop", "api", 0),
]


def _uploaded(drive: DriveServer, stored) -> bytes:
    return drive.content(stored.file_id)


@pytest.mark.parametrize("fault,on,delay", TRANSIENT, ids=[f"{f}-{o}-{d}" for f, o, d in TRANSIENT])
def test_upload_survives_transient_fault(drive, sa_file, big_archive, fault, on, delay):
    path, meta = big_archive
    destination = DriveDestination(gdrive_config(drive, sa_file, timeout=0.5), retry_base=0.01)
    drive.inject(fault, on=on, nth=5 if on == "chunk" else 1, delay=delay)
    stored = destination.store(path, meta)
    assert drive.faults.fired == 1
    assert _uploaded(drive, stored) == path.read_bytes()
    assert len(drive.sessions) == 1
    assert drive.bytes_received - meta.size <= CHUNK      # at most one chunk sent again
    assert stored.link.endswith(f"/file/d/{stored.file_id}/view")
    assert stored.location == f"gdrive://{stored.file_id}"


def test_several_faults_cost_at_most_one_chunk_each(drive, gdrive, big_archive):
    path, meta = big_archive
    for kind, nth in (("503", 2), ("drop", 4), ("401", 6), ("no-range", 9), ("429", 12)):
        drive.inject(kind, nth=nth)
    stored = gdrive.store(path, meta)
    assert drive.faults.fired == 5
    assert _uploaded(drive, stored) == path.read_bytes()
    assert drive.bytes_received - meta.size <= 5 * CHUNK


def test_token_refresh_after_401_reaches_token_endpoint(drive, gdrive, big_archive):
    path, meta = big_archive
    drive.inject("401", nth=3)
    gdrive.store(path, meta)
    assert drive.count("token") == 2


@pytest.mark.parametrize("kind", ["expire", "expire-410"])
def test_expired_session_starts_one_new_upload(drive, gdrive, big_archive, kind):
    path, meta = big_archive
    drive.inject(kind, nth=5)
    stored = gdrive.store(path, meta)
    sessions = list(drive.sessions.values())
    assert len(sessions) == 2 and sessions[0].expired
    assert sessions[1].bytes_received == meta.size
    assert _uploaded(drive, stored) == path.read_bytes()


def test_session_expiring_twice_is_retried_next_run(drive, gdrive, big_archive):
    path, meta = big_archive
    drive.inject("expire", nth=3, times=2)
    with pytest.raises(DestinationError) as caught:
        gdrive.store(path, meta)
    assert (caught.value.kind, caught.value.permanent) == ("network", False)


PERMANENT = [  # (fault, category, kind, words the message must contain)
    ("sa-no-quota", "start", "quota", ["shared_drive_id", "impersonate"]),
    ("sa-no-quota", "chunk", "quota", ["shared_drive_id", "impersonate"]),
    ("storage-quota", "chunk", "quota", ["storage quota", "free space"]),
    ("invalid-grant", "token", "auth", ["drive-login"]),
    ("not-found", "start", "not-found", ["folder"]),
]


@pytest.mark.parametrize("fault,on,kind,words", PERMANENT, ids=[f"{p[0]}-{p[1]}" for p in PERMANENT])
def test_permanent_fault_fails_fast_with_advice(drive, sa_file, big_archive, fault, on, kind, words):
    path, meta = big_archive
    destination = DriveDestination(gdrive_config(drive, sa_file, retry_deadline=60.0), retry_base=0.5)
    drive.inject(fault, on=on, nth=3 if on == "chunk" else 1, times=10)   # these faults persist
    started = time.monotonic()
    with pytest.raises(DestinationError) as caught:
        destination.store(path, meta)
    assert time.monotonic() - started < 5
    assert (caught.value.kind, caught.value.permanent) == (kind, True)
    for word in words:
        assert word in str(caught.value)
    assert [f for f in drive.files.values() if f.content is not None] == []


def test_401_that_persists_is_an_auth_error(drive, gdrive, big_archive):
    path, meta = big_archive
    drive.inject("401", nth=2, times=50)
    with pytest.raises(DestinationError) as caught:
        gdrive.store(path, meta)
    assert (caught.value.kind, caught.value.permanent) == ("auth", True)


def test_missing_shared_drive_is_not_found(drive, sa_file, archive):
    destination = DriveDestination(gdrive_config(drive, sa_file, shared_drive_id="0Anope"), retry_base=0.01)
    with pytest.raises(DestinationError) as caught:
        destination.store(*archive)
    assert caught.value.kind == "not-found" and "shared drive 0Anope" in str(caught.value)


def test_shared_drive_upload_lands_in_the_drive(drive, sa_file, archive):
    drive_id = drive.add_shared_drive()
    destination = DriveDestination(gdrive_config(drive, sa_file, shared_drive_id=drive_id), retry_base=0.01)
    stored = destination.store(*archive)
    assert drive.files[stored.file_id].drive_id == drive_id
    assert drive.folder_id("backupd/testhost", parent=drive_id) in drive.files[stored.file_id].parents
    assert [b.file_id for b in destination.list()] == [stored.file_id]


def test_corrupted_upload_is_removed_and_fails_verify(drive, gdrive, big_archive):
    path, meta = big_archive
    drive.inject("corrupt", on="finish")
    with pytest.raises(DestinationError) as caught:
        gdrive.store(path, meta)
    assert caught.value.kind == "verify" and "md5Checksum" in str(caught.value)
    assert [f for f in drive.files.values() if f.content is not None] == []


def test_server_down_is_a_retryable_network_error(sa_file, big_archive):
    with DriveServer() as drive:
        config = gdrive_config(drive, sa_file, retry_deadline=1.0, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DestinationError) as caught:
        DriveDestination(config, retry_base=0.05).store(*big_archive)
    assert time.monotonic() - started < 5
    assert (caught.value.kind, caught.value.permanent) == ("network", False)


def test_server_down_mid_upload_then_next_run_uploads(rsa_key, tmp_path, big_archive):
    path, meta = big_archive
    first = DriveServer().start()
    sa = first.write_credentials(tmp_path / "sa.json", first.oauth.service_account(key=rsa_key))
    config = gdrive_config(first, sa, retry_deadline=0.5, timeout=0.5)
    stop_after_chunks = lambda done, total: first.stop() if done >= 4 * CHUNK else None
    with pytest.raises(DestinationError) as caught:
        DriveDestination(config, retry_base=0.05).store(path, meta, progress=stop_after_chunks)
    assert (caught.value.kind, caught.value.permanent) == ("network", False)
    assert path.read_bytes() and path.stat().st_size == meta.size      # the spool copy is untouched
    with DriveServer(port=first.port) as second:                       # next run: Drive is back
        second.oauth.service_account(key=rsa_key)
        stored = DriveDestination(config, retry_base=0.05).store(path, meta)
        assert second.content(stored.file_id) == path.read_bytes()


def test_cancel_between_chunks_abandons_the_session(drive, gdrive, big_archive):
    path, meta = big_archive
    token = CancelToken()
    gdrive.cancel = token
    with pytest.raises(Cancelled):
        gdrive.store(path, meta, progress=lambda done, total: token.cancel() if done >= 3 * CHUNK else None)
    assert [f for f in drive.files.values() if f.content is not None] == []
    assert gdrive.list() == []
    assert drive.bytes_received <= 4 * CHUNK
