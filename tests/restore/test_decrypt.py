"""Restoring and verifying encrypted archives through open_decrypted: identity files read line by line, and a
wrong identity, a cut or a damaged archive refused in one line with nothing restored."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backupd.archive.encrypt import AgeEncryptor
from backupd.restore import RestoreError, extract_archive, verify_archive
from backupd.restore.decrypt import is_encrypted, looks_encrypted, open_decrypted
from backupd.sources.directory import DirectorySource
from tests.age_keys import needs_age, ssh, x25519
from tests.archive.helpers import source_config, tree_state, write_archive
from tests.restore.test_restore_roundtrip import make_tree

pytestmark = needs_age
CHUNK = 64 * 1024 + 16          # an age payload chunk with its tag


@pytest.fixture
def encrypted(tmp_path):
    """(archive, the X25519 key it is encrypted to, the tree it holds)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    make_tree(tree)
    key = x25519(tmp_path / "keys")
    archive = tmp_path / "backup.tar.zst.age"
    write_archive(archive, [DirectorySource(source_config("files", "directory", path=tree))], tmp_path / "work",
                  encryptor=AgeEncryptor([key.recipient]))
    return archive, key, tree


def restore(archive: Path, identity: Path, target: Path):
    with open(archive, "rb") as stored:
        return extract_archive(open_decrypted(stored, identity), target)


def refused(archive: Path, identity: Path, target: Path) -> str:
    """The one-line error of a restore that must fail, once checked that nothing was restored."""
    with pytest.raises(RestoreError) as caught:
        restore(archive, identity, target)
    message = str(caught.value)
    assert message and "\n" not in message
    assert not target.exists() or list(target.iterdir()) == []
    return message


def test_an_encrypted_archive_restores_byte_for_byte(encrypted, tmp_path):
    archive, key, tree = encrypted
    assert is_encrypted(archive.name) and looks_encrypted(archive.read_bytes()[:64])
    summary = restore(archive, key.identity, tmp_path / "out")
    assert tree_state(tmp_path / "out" / "files") == tree_state(tree)
    assert summary.files > 0


def test_verify_reads_every_member_of_an_encrypted_archive_from_an_iterable(encrypted):
    archive, key, _ = encrypted
    data = archive.read_bytes()
    pieces = (data[start:start + 100_000] for start in range(0, len(data), 100_000))
    report = verify_archive(open_decrypted(pieces, key.identity))
    assert report.ok and report.members > 5, report.problems()


def test_identity_files_are_read_line_by_line(encrypted, tmp_path):
    archive, key, tree = encrypted
    secret = next(line for line in key.identity.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-1"))
    other = x25519(tmp_path / "other")
    other_secret = other.identity.read_text().strip().splitlines()[-1]
    messy = tmp_path / "messy.txt"
    messy.write_text(f"# keys of the backup host\r\n\r\n   \n{other_secret}  \r\n# the right one:\n  {secret}\n\n")
    restore(archive, messy, tmp_path / "out")
    assert tree_state(tmp_path / "out" / "files") == tree_state(tree)


def test_an_ssh_ed25519_identity_decrypts(tmp_path):
    key = ssh(tmp_path / "keys", "ed25519")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("over ssh keys\n")
    archive = tmp_path / "backup.tar.zst.age"
    write_archive(archive, [DirectorySource(source_config("files", "directory", path=tmp_path / "tree"))],
                  tmp_path / "work", encryptor=AgeEncryptor([key.recipient]))
    restore(archive, key.identity, tmp_path / "out")
    assert (tmp_path / "out" / "files" / "a.txt").read_text() == "over ssh keys\n"


def test_a_wrong_identity_is_refused_in_one_line(encrypted, tmp_path):
    archive, key, _ = encrypted
    wrong = x25519(tmp_path / "wrong")
    message = refused(archive, wrong.identity, tmp_path / "out")
    assert "no identity" in message and str(wrong.identity) in message
    assert wrong.identity.read_text().strip().splitlines()[-1] not in message      # never the key itself


def _cut_points(size: int) -> dict[str, int]:
    return {"in the header": 40, "after the header": 200, "mid-chunk": 3 * CHUNK + 5000,
            "a chunk short": size - CHUNK, "a byte short": size - 1}


@pytest.mark.parametrize("where", list(_cut_points(10 ** 7)))
def test_a_truncated_encrypted_archive_is_refused_in_one_line(encrypted, tmp_path, where):
    archive, key, _ = encrypted
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.zst.age"
    cut.write_bytes(data[:_cut_points(len(data))[where]])
    refused(cut, key.identity, tmp_path / "out")


@pytest.mark.parametrize("offset", [30, 100, 2 * CHUNK, -20], ids=["header", "header-mac", "payload", "last-chunk"])
def test_a_corrupted_encrypted_archive_is_refused_in_one_line(encrypted, tmp_path, offset):
    archive, key, _ = encrypted
    data = bytearray(archive.read_bytes())
    data[offset] ^= 0x01
    bad = tmp_path / "flipped.tar.zst.age"
    bad.write_bytes(bytes(data))
    refused(bad, key.identity, tmp_path / "out")


def test_a_plaintext_archive_given_as_encrypted_is_refused(encrypted, tmp_path):
    _, key, tree = encrypted
    plain = tmp_path / "plain.tar.zst"
    write_archive(plain, [DirectorySource(source_config("files", "directory", path=tree))], tmp_path / "work2")
    assert "not age-encrypted" in refused(plain, key.identity, tmp_path / "out")


@pytest.mark.parametrize("content, expected", [
    ("# only a comment\n\n", "holds no identity"),
    ("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\n", "line 1: a public key"),
    ("# a key\nAGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n", "line 2: a damaged"),
    ("password=hunter2\n", "line 1: not an age identity"),
])
def test_an_identity_file_without_a_usable_identity_is_refused_before_reading(encrypted, tmp_path, content,
                                                                             expected):
    archive, _, _ = encrypted
    identity = tmp_path / "identity.txt"
    identity.write_text(content)
    message = refused(archive, identity, tmp_path / "out")
    assert expected in message and "hunter2" not in message and "QQQQ" not in message


def test_a_missing_identity_file_is_named(encrypted, tmp_path):
    archive, _, _ = encrypted
    assert "cannot read the identity file" in refused(archive, tmp_path / "no-such-key", tmp_path / "out")


def test_the_stored_bytes_are_hashed_by_the_caller_not_changed(encrypted):
    archive, key, _ = encrypted
    stored = archive.read_bytes()
    seen = hashlib.sha256()

    def pieces():
        for start in range(0, len(stored), 65536):
            seen.update(stored[start:start + 65536])
            yield stored[start:start + 65536]
    assert verify_archive(open_decrypted(pieces(), key.identity)).ok
    assert seen.hexdigest() == hashlib.sha256(stored).hexdigest()
