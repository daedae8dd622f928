"""ArchiveCheck on a manifest as the archive writer lays it out (one member a line), the member log read back
and the member lines parsed in blocks made small here: the same findings and errors as line by line."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from backupd.archive.manifest import ManifestWriter
from backupd.restore import ArchiveError, Member, VerifyReport
from backupd.restore import check as check_module
from backupd.restore.check import ArchiveCheck

PARSE_LINES = 64
COUNT = 3 * PARSE_LINES + 20


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(check_module, "PARSE_LINES", PARSE_LINES)
    monkeypatch.setattr(check_module, "LOG_BLOCK", 1000)     # records of 100-250 bytes cut at every block


def members() -> list[Member]:
    names = [f"data/{'deep/' * (index % 7)}file-{index:05d}-{'x' * (index % 90)}.txt" for index in range(COUNT)]
    return [Member(name=name, type="file", mode=0o644, uid=0, gid=0, mtime_ns=0, size=index,
                   sha256=hashlib.sha256(name.encode()).hexdigest()) for index, name in enumerate(names)]


def manifest(tmp_path, entries: list[Member]) -> bytes:
    writer = ManifestWriter(tmp_path / "MANIFEST.json", {"job": "check"})
    for member in entries:
        writer.file(member.name, member.size, member.sha256)
    writer.close({"member_count": len(entries)})
    return (tmp_path / "MANIFEST.json").read_bytes()


def compared(entries: list[Member], document: bytes) -> VerifyReport:
    check = ArchiveCheck()
    try:
        for member in entries:
            check.record(member)
        check.take_manifest(SimpleNamespace(chunks=lambda: iter([document])))
        return check.compare(VerifyReport())
    finally:
        check.close()


def test_many_members_compare_across_blocks(tmp_path):
    entries = members()
    document = manifest(tmp_path, entries)
    report = compared(entries, document)
    assert report.ok and report.members == COUNT, report.problems()
    late = entries[PARSE_LINES * 2 + 7]
    other = document.replace(late.sha256.encode(), b"0" * 64)
    assert compared(entries, other).differ == [f"{late.name}: sha256 differs from the manifest"]


@pytest.mark.parametrize("damage", ["not json", '{"name": "a"}, {"name": "b"}'])
def test_a_bad_member_line_in_a_later_block_is_named_as_line_by_line(tmp_path, damage):
    entries = members()
    lines = manifest(tmp_path, entries).split(b"\n")
    index = next(i for i, line in enumerate(lines) if entries[PARSE_LINES + 3].name.encode() in line)
    lines[index] = damage.encode() + b","
    with pytest.raises(ArchiveError, match="MANIFEST.json: bad member entry: "):
        compared(entries, b"\n".join(lines))
