"""The streaming reader on archives written by the real `tar` CLI (GNU, pax and ustar formats) and on
damaged ones: every member's fields and sha256, the whole input's sha256, one-line errors."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from backupd.restore import ArchiveError, ArchiveReader, RestoreError, extract_archive, verify_archive
from tests.restore.crafted import craft, file

LONG_DIR = "d" * 90 + "/" + "e" * 60          # over 100 characters: ustar prefix, GNU or pax long name
LONG_TARGET = "t" * 150


def tar_archive(tmp_path: Path, fmt: str) -> tuple[Path, dict]:
    """`tar --format=FMT -c . | zstd` over a small tree; returns the archive and {name: sha256}."""
    root = tmp_path / "tree"
    (root / LONG_DIR).mkdir(parents=True)
    contents = {f"./{LONG_DIR}/file.txt": b"deep\n", "./big.bin": os.urandom((1 << 20) + 777), "./empty": b""}
    if fmt != "ustar":
        contents["./caf\u00e9.txt"] = b"non-ascii\n"
    for name, data in contents.items():
        (root / name).write_bytes(data)
    os.symlink(LONG_TARGET if fmt != "ustar" else "big.bin", root / "link")
    os.link(root / "big.bin", root / "hard")
    tar = subprocess.run(["tar", f"--format={fmt}", "--sort=name", "-C", str(root), "-cf", "-", "."], capture_output=True,
                         check=True)
    archive = tmp_path / f"{fmt}.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(tar.stdout))
    return archive, {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar"])
def test_members_of_tar_cli_archives(tmp_path, fmt):
    archive, digests = tar_archive(tmp_path, fmt)
    seen = {}
    with ArchiveReader(open(archive, "rb")) as reader:
        for member in reader:
            data = b"".join(bytes(piece) for piece in reader.chunks())
            assert member.sha256 == hashlib.sha256(data).hexdigest() and len(data) == member.size
            seen[member.name.rstrip("/")] = member
    assert reader.finished and reader.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    for name, digest in digests.items():
        assert seen[name].type == "file" and seen[name].sha256 == digest
    assert seen[f"./{LONG_DIR}"].type == "dir"
    assert (seen["./link"].type, seen["./link"].linkname) == ("symlink", LONG_TARGET if fmt != "ustar" else "big.bin")
    assert (seen["./hard"].type, seen["./hard"].linkname, seen["./hard"].size) == ("hardlink", "./big.bin", 0)
    assert int(seen["./big.bin"].mtime) == int((tmp_path / "tree/big.bin").stat().st_mtime)


def test_input_as_an_iterable_of_small_pieces(tmp_path):
    archive, digests = tar_archive(tmp_path, "posix")
    data = archive.read_bytes()
    reader = ArchiveReader(data[i:i + 1000] for i in range(0, len(data), 1000))
    names = {member.name: (reader.skip(), member.sha256)[1] for member in reader}
    assert {name: names[name] for name in digests} == digests
    assert reader.sha256 == hashlib.sha256(data).hexdigest()


def test_an_archive_without_a_manifest_is_not_restored(tmp_path):
    archive, _ = tar_archive(tmp_path, "gnu")
    assert verify_archive(open(archive, "rb")).error.startswith("no MANIFEST.json in the archive")
    with pytest.raises(RestoreError, match="no MANIFEST.json"):
        extract_archive(open(archive, "rb"), tmp_path / "target")
    assert not (tmp_path / "target").exists()


def compressed_tar(members: list[tuple[tarfile.TarInfo, bytes]], tail: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(buffer.getvalue() + tail)


def read_all(data: bytes) -> list[str]:
    return [member.name for member in ArchiveReader([data])]


def test_damaged_archives_give_one_line_errors(tmp_path):
    good = compressed_tar([file("a.txt", b"hello\n")])
    raw = zstandard.ZstdDecompressor().decompress(good)
    cases = {
        "bad tar header checksum at offset 0": raw[:10] + b"X" + raw[11:],
        "unexpected data after the end of the archive": raw + b"trailing garbage",
        "archive is truncated: end of data while reading member data in member 'a.txt'": raw[:512 + 3],
        "is followed by data": raw[:1024] + bytes(512) + raw[:512],
    }
    for message, tar in cases.items():
        with pytest.raises(ArchiveError, match=message):
            read_all(zstandard.ZstdCompressor().compress(tar))
    with pytest.raises(ArchiveError, match="corrupt archive: zstd"):
        read_all(b"not zstd at all")
    with pytest.raises(ArchiveError, match="corrupt archive: zstd"):
        read_all(good + b"garbage after the frame")


def test_member_after_the_manifest_is_refused(tmp_path):
    archive = craft(tmp_path / "a.tar.zst", [file("a.txt")])
    data = zstandard.ZstdDecompressor().decompress(archive.read_bytes())
    info = tarfile.TarInfo("late.txt")
    info.size = 4
    late = info.tobuf(tarfile.PAX_FORMAT) + b"late" + bytes(508)
    end = len(data.rstrip(b"\x00")) + (-len(data.rstrip(b"\x00")) % 512)
    tampered = zstandard.ZstdCompressor().compress(data[:end] + late + bytes(1024))
    report = verify_archive([tampered])
    assert report.error == "member 'late.txt' follows MANIFEST.json, which must be last"
    assert report.sha256 == hashlib.sha256(tampered).hexdigest()
