"""The stored bytes' sha256 against the record when the extraction reads something decoded from them (an
encrypted archive, decrypted): compared before anything is moved into place, exactly as a plain archive's.
One flipped byte and another encryption of the same archive (which age accepts) are refused; a wrong
identity is refused without reading the rest of the archive."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from backupd.restore import RestoreError, StoredBytes, extract_archive
from backupd.restore.decrypt import open_decrypted
from tests.age_keys import needs_age, x25519
from tests.archive.helpers import tree_state
from tests.restore.test_decrypt import encrypted  # noqa: F401  (an archive encrypted to an X25519 key)

pytestmark = needs_age
PIECE = 100_000


class Pieces:
    """The stored file in pieces, counting how many were taken."""

    def __init__(self, data: bytes) -> None:
        self.data, self.taken = data, 0

    def __iter__(self):
        for start in range(0, len(self.data), PIECE):
            self.taken += 1
            yield self.data[start:start + PIECE]


def restore(data: bytes, identity: Path, target: Path, record: str | None):
    stored = StoredBytes(Pieces(data))
    return extract_archive(open_decrypted(stored, identity), target, expected_sha256=record, stored=stored)


def refused(data: bytes, identity: Path, target: Path, record: str | None) -> str:
    with pytest.raises(RestoreError) as caught:
        restore(data, identity, target, record)
    assert not target.exists()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_stored_file_that_matches_the_record_restores(encrypted, tmp_path):
    archive, key, tree = encrypted
    data = archive.read_bytes()
    summary = restore(data, key.identity, tmp_path / "out", hashlib.sha256(data).hexdigest())
    assert tree_state(tmp_path / "out" / "files") == tree_state(tree)
    assert summary.archive_sha256 == hashlib.sha256(data).hexdigest()      # of the stored, encrypted bytes


@pytest.mark.parametrize("offset", [2 * 65552 + 100, -20], ids=["payload", "last-chunk"])
def test_one_flipped_byte_in_an_encrypted_archive_with_a_record_is_refused_by_its_sha256(encrypted, tmp_path,
                                                                                        offset):
    archive, key, _ = encrypted
    data = archive.read_bytes()
    record = hashlib.sha256(data).hexdigest()
    bad = bytearray(data)
    bad[offset] ^= 0x01
    message = refused(bytes(bad), key.identity, tmp_path / "out", record)
    assert message.startswith(f"archive does not verify: archive sha256 is {hashlib.sha256(bad).hexdigest()}, "
                              f"the record says {record} (cannot decrypt: ")


def test_another_encryption_of_the_same_archive_decrypts_but_is_not_the_recorded_file(encrypted, tmp_path):
    archive, key, _ = encrypted
    data = archive.read_bytes()
    recipient = subprocess.run(["age-keygen", "-y", str(key.identity)], capture_output=True, text=True,
                               check=True).stdout.strip()
    plain = subprocess.run(["age", "-d", "-i", str(key.identity)], input=data, capture_output=True, check=True).stdout
    again = subprocess.run(["age", "-r", recipient], input=plain, capture_output=True, check=True).stdout
    assert again != data
    restore(again, key.identity, tmp_path / "unrecorded", None)              # age itself accepts it
    message = refused(again, key.identity, tmp_path / "out", hashlib.sha256(data).hexdigest())
    assert message == (f"archive does not verify: archive sha256 is {hashlib.sha256(again).hexdigest()}, the "
                       f"record says {hashlib.sha256(data).hexdigest()}; nothing restored")


def test_a_wrong_identity_is_refused_without_reading_the_whole_archive(encrypted, tmp_path):
    archive, _, _ = encrypted
    data = archive.read_bytes() + os.urandom(3 << 20)       # long enough to tell
    wrong = x25519(tmp_path / "wrong")
    pieces = Pieces(data)
    stored = StoredBytes(pieces)
    with pytest.raises(RestoreError, match="no identity in"):
        extract_archive(open_decrypted(stored, wrong.identity), tmp_path / "out",
                        expected_sha256=hashlib.sha256(data).hexdigest(), stored=stored)
    assert pieces.taken < len(data) // PIECE // 2 and not (tmp_path / "out").exists()
