"""An encrypted archive restored by backupctl with the daemon running and stopped (--config): its stored bytes'
sha256 is checked against the history record as a plain archive's is. One flipped byte in the stored file, and
another encryption of the same archive (which age accepts: only the record tells), are refused with nothing
restored."""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from tests.age_keys import needs_age, x25519
from tests.archive.helpers import tree_state
from tests.configs import directory_source, job, write_config
from tests.e2e.test_e2e_encryption import make_tree

pytestmark = needs_age


def refusal(done: subprocess.CompletedProcess, stored: bytes, record: dict, target: Path) -> str:
    """The one-line error of a refused restore, checked to name the stored file's sha256 and the record's."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.endswith("; nothing restored\n")
    assert done.stderr.startswith(f"backupctl: archive does not verify: archive sha256 is "
                                  f"{hashlib.sha256(stored).hexdigest()}, the record says "
                                  f"{record['archive']['sha256']}")
    assert not target.exists()
    return done.stderr


def test_a_stored_encrypted_archive_that_is_not_the_recorded_one_is_refused(tmp_path, start_daemon):
    make_tree(tmp_path / "data")
    key = x25519(tmp_path / "keys")
    config = write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")},
                          jobs={"main": job(["files"], encrypt_to=[key.recipient])})
    daemon = start_daemon(config)
    record = daemon.ctl_json("trigger", "--wait")
    assert record["status"] == "success", record
    archive = next((tmp_path / "archives").glob("*.tar.zst.age"))
    good = archive.read_bytes()
    summary = daemon.ctl_json("restore", "latest", "--identity", str(key.identity), "--to", str(tmp_path / "out"))
    assert summary["archive_sha256"] == record["archive"]["sha256"] == hashlib.sha256(good).hexdigest()
    assert tree_state(tmp_path / "out" / "files") == tree_state(tmp_path / "data")

    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01
    archive.write_bytes(flipped)
    target = tmp_path / "target"
    restore = ("restore", "latest", "--identity", str(key.identity), "--to", str(target))
    message = refusal(daemon.ctl(*restore), bytes(flipped), record, target)
    assert re.search(r" \(cannot decrypt: [^()]*(\([^()]*\))?[^()]*\); nothing restored$", message.rstrip("\n"))
    assert daemon.stop() == 0
    refusal(daemon.ctl(*restore, "--config", str(config)), bytes(flipped), record, target)

    plain = subprocess.run(["age", "-d", "-i", str(key.identity)], input=good, capture_output=True, check=True)
    again = subprocess.run(["age", "-r", key.recipient], input=plain.stdout, capture_output=True, check=True).stdout
    archive.write_bytes(again)
    assert refusal(daemon.ctl(*restore, "--config", str(config)), again, record, target).endswith(
        f"the record says {record['archive']['sha256']}; nothing restored\n")
