"""Archives encrypted while they are written: standard age v1 that the real age, zstd and tar restore, a sha256
of the stored bytes, no plaintext on disk at any time, and failures that leave nothing."""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess

import pytest

from backupd.archive.encrypt import MAGIC, AgeEncryptor, EncryptError
from backupd.archive.stream import BUFFER, CompressedStream
from backupd.archive.writer import ArchiveWriter
from backupd.sources.directory import DirectorySource
from tests.age_keys import KEY_MAKERS, age_restore, needs_age, x25519
from tests.archive.helpers import HEADER, source_config, tree_state, write_archive
from tests.archive.test_stream_faults import FailingFile, ended_within_deadline
from tests.waiting import wait_for

pytestmark = needs_age
MARKER = b"plaintext-marker-that-must-never-reach-the-disk"


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n" * 5000)
    (root / "sub" / "big.bin").write_bytes(os.urandom(3 * BUFFER) + b"end")
    (root / "sub" / "empty").write_bytes(b"")
    os.symlink("a.txt", root / "link")
    os.chmod(root / "sub" / "big.bin", 0o640)


def encrypted_backup(tmp_path, recipients):
    make_tree(tmp_path / "data")
    archive = tmp_path / "backup.tar.zst.age"
    stats = write_archive(archive, [DirectorySource(source_config("files", "directory", path=tmp_path / "data"))],
                          tmp_path / "work", encryptor=AgeEncryptor(recipients))
    return archive, stats


@pytest.mark.parametrize("kind", sorted(KEY_MAKERS))
def test_an_encrypted_archive_restores_with_the_age_zstd_and_tar_programs(tmp_path, kind):
    key = KEY_MAKERS[kind](tmp_path / "keys")
    archive, stats = encrypted_backup(tmp_path, [key.recipient])
    stored = archive.read_bytes()
    assert stored.startswith(MAGIC)
    assert stats.size == len(stored) and stats.sha256 == hashlib.sha256(stored).hexdigest()
    out = age_restore(archive, key.identity, tmp_path / "restored")
    assert tree_state(out / "files") == tree_state(tmp_path / "data")
    manifest = json.loads((out / "MANIFEST.json").read_text())
    files = {entry["name"]: entry for entry in manifest["members"] if entry["type"] == "file"}
    big = (tmp_path / "data" / "sub" / "big.bin").read_bytes()
    assert files["files/sub/big.bin"]["sha256"] == hashlib.sha256(big).hexdigest()     # of the plaintext


def test_every_recipient_of_several_can_decrypt(tmp_path):
    keys = [make(tmp_path / name) for name, make in sorted(KEY_MAKERS.items())]
    archive, _ = encrypted_backup(tmp_path, [key.recipient for key in keys])
    for index, key in enumerate(keys):
        out = age_restore(archive, key.identity, tmp_path / f"restored-{index}")
        assert (out / "files" / "a.txt").read_text() == "alpha\n" * 5000


class WatchingStream(io.RawIOBase):
    """A member's data that, two thirds of the way, looks at what the partial archive on disk holds so far
    (zstd's workers alone hold some 16 MiB before their first output)."""

    def __init__(self, archive, size: int) -> None:
        self.archive, self.size, self.given, self.seen = archive, size, 0, None
        self.random = random.Random(7)

    def readinto(self, view) -> int:
        if self.given >= self.size * 2 // 3 and self.seen is None:
            self.seen = self._wait_for_output()
        count = min(len(view), self.size - self.given)
        piece = (MARKER + self.random.randbytes(count))[:count]
        view[:count] = piece
        self.given += count
        return count

    def _wait_for_output(self) -> bytes:
        wait_for(lambda: self.archive.stat().st_size >= 64 << 10, "encrypted output in the partial file")
        return self.archive.read_bytes()


def test_the_partial_file_holds_only_ciphertext_while_it_is_written(tmp_path):
    key = x25519(tmp_path)
    partial = tmp_path / "spool" / "run.tar.zst.age.partial"
    partial.parent.mkdir()
    watcher = WatchingStream(partial, 48 * BUFFER)
    with ArchiveWriter(partial, header=HEADER, encryptor=AgeEncryptor([key.recipient])) as writer:
        writer.write_stream("cmd/out.bin", watcher, watcher.size)
        writer.finish()
    assert watcher.seen is not None and watcher.seen.startswith(MAGIC)
    assert MARKER not in watcher.seen and b"out.bin" not in watcher.seen
    assert not watcher.seen.startswith(b"\x28\xb5\x2f\xfd")         # not a zstd frame
    assert MARKER not in partial.read_bytes()
    assert sorted(p.name for p in partial.parent.iterdir()) == [partial.name]   # no plaintext scratch file


def test_a_recipient_the_encryptor_refuses_fails_the_archive_in_one_line_and_leaves_nothing(tmp_path):
    archive = tmp_path / "run.tar.zst.age.partial"
    with pytest.raises(EncryptError) as caught:
        with ArchiveWriter(archive, header=HEADER, encryptor=AgeEncryptor(["age1notakey"])) as writer:
            writer.write_stream("x", io.BytesIO(b"data"), 4)
            writer.finish()
    assert "\n" not in str(caught.value) and str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("from_end", [0, 1, 3], ids=["last-write", "second-to-last", "earlier"])
def test_a_failing_write_of_the_encrypted_output_ends_close_with_the_error(tmp_path, from_end):
    key = x25519(tmp_path)
    data = random.Random(from_end).randbytes(5 * BUFFER)

    def write_all(file) -> None:
        stream = CompressedStream(file, level=1, threads=0, encryptor=AgeEncryptor([key.recipient]))
        try:
            stream.write(data)
            stream.close()
        finally:
            stream.abort()
    with FailingFile(tmp_path / "dry-run") as file:
        write_all(file)
        needed = file.writes
    assert subprocess.run(["age", "-d", "-i", str(key.identity), str(tmp_path / "dry-run")],
                          capture_output=True).returncode == 0
    with FailingFile(tmp_path / "out", max(1, needed - from_end)) as file:
        error = ended_within_deadline(lambda: write_all(file))
    assert isinstance(error, OSError) and "No space left" in str(error)
