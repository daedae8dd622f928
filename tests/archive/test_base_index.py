"""The full's manifest as an index: lookups, compressed copies, and one-line errors for damaged ones."""
from __future__ import annotations

import json

import pytest
import zstandard

from backupd.archive.base_index import BaseError, BaseIndex
from backupd.archive.manifest import ManifestWriter, save_compressed


def manifest(path, entries=()):
    writer = ManifestWriter(path, {"job": "main", "started": "2026-12-01T03:00:00+00:00"})
    writer.file("src/a.txt", 5, "ab" * 32, "[420, 1000, 1000, 1796130412362026353, 1796130412462026353]")
    writer.file("src/streamed.csv", 9, "cd" * 32)           # no stat: never taken as unchanged
    writer.directory("src")
    for name in entries:
        writer.file(name, 1, "ef" * 32, "[384, 0, 0, 1, 2]")
    writer.close({"member_count": 3 + len(entries)})
    return path


def test_files_with_stat_are_found_by_name_plain_or_compressed(tmp_path):
    plain = manifest(tmp_path / "m.json", [f"src/many/{n}" for n in range(5000)])
    save_compressed(plain, tmp_path / "m.json.zst")
    for path in (plain, tmp_path / "m.json.zst"):
        index = BaseIndex.load(path)
        assert index.files == 5001 and index.header["started"] == "2026-12-01T03:00:00+00:00"
        found = index.get("src/a.txt")
        assert (found.size, found.mode, found.uid, found.gid) == (5, 420, 1000, 1000)
        assert (found.mtime_ns, found.ctime_ns, found.sha256) == (1796130412362026353, 1796130412462026353, "ab" * 32)
        assert index.get("src/many/4999").mode == 384
        assert index.get("src/streamed.csv") is None and index.get("src") is None and index.get("nope") is None


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"not zstd at all"), "is damaged"),
    (lambda p: p.write_bytes(zstandard.ZstdCompressor().compress(b'{"format": "x"}\n')), "has no members list"),
    (lambda p: p.write_bytes(zstandard.ZstdCompressor().compress(
        b'{"format": "x",\n"members": [\n{"name": "a", "type": "file", "size": 1, "sha256": "zz", "stat": [1, 2, 3, 4, 5]}\n]\n}\n')),
     "malformed entry for 'a'"),
    (lambda p: p.write_bytes(zstandard.ZstdCompressor().compress(b'{"format": "x",\n"members": [\n{"name": \n]\n}\n')),
     "one member per line"),
])
def test_a_damaged_copy_is_one_line_naming_it(tmp_path, damage, message):
    path = tmp_path / "base.manifest.zst"
    damage(path)
    with pytest.raises(BaseError) as caught:
        BaseIndex.load(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_copy_is_one_line(tmp_path):
    with pytest.raises(BaseError, match="cannot read the full's manifest .*missing.manifest.zst"):
        BaseIndex.load(tmp_path / "missing.manifest.zst")


def test_the_written_manifest_is_valid_json_with_the_new_fields(tmp_path):
    document = json.loads(manifest(tmp_path / "m.json").read_text())
    assert document["members"][0]["stat"] == [420, 1000, 1000, 1796130412362026353, 1796130412462026353]
    assert "stat" not in document["members"][1]
