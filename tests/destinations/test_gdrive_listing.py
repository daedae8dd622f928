"""Listing pages through Drive's results, filters by job, and tells backupd's files from others."""
from __future__ import annotations

from backupd.destinations.gdrive import destination as drive_destination
from tests.destinations.helpers import make_archive


def test_list_follows_next_page_tokens(drive, gdrive, tmp_path, monkeypatch):
    monkeypatch.setattr(drive_destination, "PAGE_SIZE", 2)
    names = [f"nightly-{i}.tar.zst" for i in range(5)]
    for i, name in enumerate(names):
        gdrive.store(*make_archive(tmp_path, 100 + i, name=name, created=f"2024-01-0{i + 1}T03:00:00Z"))
    other = make_archive(tmp_path, 100, name="weekly-1.tar.zst", job="weekly")
    gdrive.store(*other)
    calls_before = drive.count("api")
    assert [b.name for b in gdrive.list("nightly")] == names[::-1]
    assert drive.count("api") - calls_before == 3          # 5 results, 2 per page
    assert len(gdrive.list()) == 6


def test_names_with_quotes_are_escaped_in_queries(drive, gdrive, tmp_path):
    path, meta = make_archive(tmp_path, 1000, name="it's-nightly.tar.zst", job="o'clock")
    stored = gdrive.store(path, meta)
    assert [b.file_id for b in gdrive.list("o'clock")] == [stored.file_id]
    gdrive.delete(meta.name)
    assert gdrive.list() == []
