"""Downloads of a 21-chunk archive from the loopback Drive: ranged GETs of one chunk each; a connection
dropped midway, a transient fault or an expired token resumes at the first byte not received; a file
that vanished is not-found; a Drive that stays down gives up as a network error."""
from __future__ import annotations

import pytest

from backupd.destinations.base import DestinationError
from backupd.destinations.gdrive.destination import DriveDestination
from tests.destinations.helpers import CHUNK, gdrive_config


def stored(drive, gdrive, big_archive):
    path, meta = big_archive
    gdrive.store(path, meta)
    return path.read_bytes(), meta


def test_a_download_is_one_ranged_get_per_chunk(drive, gdrive, big_archive):
    data, meta = stored(drive, gdrive, big_archive)
    before = drive.count("media")
    assert b"".join(gdrive.fetch_stream(meta.name)) == data
    assert drive.count("media") - before == -(-meta.size // CHUNK)


@pytest.mark.parametrize("fault", ["cut", "drop", "503", "429", "rate-limit", "401", "slow"])
def test_a_download_survives_a_fault_midway(drive, gdrive, big_archive, fault):
    data, meta = stored(drive, gdrive, big_archive)
    drive.inject(fault, on="media", nth=4, delay=3.0 if fault == "slow" else 0.0)   # longer than the 2 s timeout
    assert b"".join(gdrive.fetch_stream(meta.name)) == data
    assert drive.faults.fired == 1


def test_a_cut_download_resumes_after_the_bytes_that_arrived(drive, gdrive, big_archive):
    data, meta = stored(drive, gdrive, big_archive)
    before = drive.count("media")
    drive.inject("cut", on="media", nth=2, times=3)
    pieces = list(gdrive.fetch_stream(meta.name))
    assert b"".join(pieces) == data
    assert CHUNK // 2 in {len(piece) for piece in pieces}               # the half that came counted
    assert drive.count("media") - before <= -(-meta.size // CHUNK) + 3  # at most one more request per cut


def test_a_file_removed_during_the_download_is_not_found(drive, gdrive, big_archive):
    data, meta = stored(drive, gdrive, big_archive)
    pieces = gdrive.fetch_stream(meta.name)
    assert next(pieces) == data[:CHUNK]
    for file_id in list(drive.files):
        if drive.files[file_id].name == meta.name:
            del drive.state.files[file_id]
    with pytest.raises(DestinationError) as caught:
        list(pieces)
    assert caught.value.kind == "not-found"


def test_a_drive_that_stays_down_is_a_network_error(drive, sa_file, big_archive):
    path, meta = big_archive
    destination = DriveDestination(gdrive_config(drive, sa_file, retry_deadline=1.0), retry_base=0.01)
    destination.store(path, meta)
    pieces = destination.fetch_stream(meta.name)
    next(pieces)
    drive.inject("503", on="media", times=1000)
    with pytest.raises(DestinationError) as caught:
        list(pieces)
    assert (caught.value.kind, caught.value.permanent) == ("network", False)
    destination.close()


def test_fetch_to_a_file_uses_the_same_ranged_download(drive, gdrive, big_archive, tmp_path):
    data, meta = stored(drive, gdrive, big_archive)
    drive.inject("cut", on="media", nth=3)
    gdrive.fetch(meta.name, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
