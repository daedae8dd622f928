"""The Destination contract (see backupd/destinations/base.py), one suite for every destination.

A test module subclasses DestinationContract and provides fixtures:
  destination      a fresh destination
  plant_foreign    plant_foreign(destination) puts files there that are not backupd's archives
Every destination also offers clean_debris(): it removes what interrupted stores left, never a backup.
"""
from __future__ import annotations

import pytest

from backupd.destinations.base import DestinationError, StoredBackup

from tests.destinations.helpers import CHUNK, make_archive


class Interrupt(Exception):
    """Raised from a progress callback to cut a store short."""


def _interrupt(done: int, total: int) -> None:
    raise Interrupt


class DestinationContract:
    def test_store_then_list_shows_it(self, destination, archive):
        path, meta = archive
        stored = destination.store(path, meta)
        assert isinstance(stored, StoredBackup)
        assert (stored.name, stored.size, stored.sha256, stored.job) == (meta.name, meta.size, meta.sha256,
                                                                         meta.job)
        assert [b.name for b in destination.list()] == [meta.name]
        assert [b.name for b in destination.list(meta.job)] == [meta.name]
        assert destination.list("another-job") == []

    def test_fetch_returns_exact_bytes(self, destination, archive, tmp_path):
        path, meta = archive
        destination.store(path, meta)
        out = tmp_path / "fetched"
        destination.fetch(meta.name, out)
        assert out.read_bytes() == path.read_bytes()

    def test_fetch_stream_gives_the_exact_bytes_in_pieces(self, destination, big_archive):
        path, meta = big_archive
        destination.store(path, meta)
        pieces = list(destination.fetch_stream(meta.name))
        assert b"".join(pieces) == path.read_bytes() and all(pieces)

    def test_fetch_stream_of_unknown_name_is_not_found_before_any_byte(self, destination):
        with pytest.raises(DestinationError) as caught:
            destination.fetch_stream("nightly-19990101T000000Z.tar.zst")     # not iterated: raised at once
        assert caught.value.kind == "not-found"

    def test_fetch_of_unknown_name_is_not_found(self, destination, tmp_path):
        with pytest.raises(DestinationError) as caught:
            destination.fetch("nightly-19990101T000000Z.tar.zst", tmp_path / "out")
        assert caught.value.kind == "not-found"

    def test_list_is_newest_first(self, destination, tmp_path):
        older = make_archive(tmp_path, 1000, name="nightly-1.tar.zst", created="2024-01-01T03:00:00Z")
        newer = make_archive(tmp_path, 1000, name="nightly-2.tar.zst", created="2024-01-02T03:00:00Z")
        destination.store(*newer)
        destination.store(*older)
        assert [b.name for b in destination.list("nightly")] == ["nightly-2.tar.zst", "nightly-1.tar.zst"]

    def test_store_is_idempotent(self, destination, archive):
        path, meta = archive
        first = destination.store(path, meta)
        second = destination.store(path, meta)
        assert second.location == first.location
        assert len(destination.list()) == 1

    def test_delete_removes_and_is_idempotent(self, destination, archive):
        path, meta = archive
        destination.store(path, meta)
        destination.delete(meta.name)
        assert destination.list() == []
        destination.delete(meta.name)          # already gone: not an error
        assert destination.list() == []

    def test_interrupted_store_is_never_listed(self, destination, archive):
        path, meta = archive
        with pytest.raises(Interrupt):
            destination.store(path, meta, progress=_interrupt)
        assert destination.list() == []
        stored = destination.store(path, meta)     # the next run stores it properly
        assert [b.location for b in destination.list()] == [stored.location]

    def test_clean_debris_keeps_every_backup(self, destination, archive, tmp_path):
        path, meta = archive
        destination.store(path, meta)
        with pytest.raises(Interrupt):
            destination.store(*make_archive(tmp_path, 2 * CHUNK, name="nightly-2.tar.zst"), progress=_interrupt)
        destination.clean_debris()
        assert [b.name for b in destination.list()] == [meta.name]
        destination.fetch(meta.name, tmp_path / "fetched")
        assert (tmp_path / "fetched").read_bytes() == path.read_bytes()

    def test_foreign_files_are_not_listed(self, destination, plant_foreign, archive):
        path, meta = archive
        destination.store(path, meta)
        plant_foreign(destination)
        assert [b.name for b in destination.list()] == [meta.name]

    def test_progress_reaches_total(self, destination, archive):
        path, meta = archive
        seen = []
        destination.store(path, meta, progress=lambda done, total: seen.append((done, total)))
        assert seen and seen[-1] == (meta.size, meta.size)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
