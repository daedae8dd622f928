"""A real daemon with encrypt_to: its archives at the local destination are standard age files that the age,
zstd and tar programs restore, as the README says, with either recipient's key."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from backupd.archive.encrypt import MAGIC
from tests.age_keys import age_restore, needs_age, ssh, x25519
from tests.configs import directory_source, job, local_destination, write_config

pytestmark = needs_age
README = Path(__file__).resolve().parents[2] / "README.md"


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("not for Google's eyes\n" * 100)
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)) * 4000)


def test_the_daemon_stores_encrypted_archives_that_the_age_tools_restore(tmp_path, start_daemon):
    make_tree(tmp_path / "data")
    keys = [x25519(tmp_path / "keys"), ssh(tmp_path / "keys", "ed25519")]
    config = write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")},
                          jobs={"main": job(["files"], encrypt_to=[key.recipient for key in keys])})
    daemon = start_daemon(config)
    record = daemon.ctl_json("trigger", "--wait")
    assert record["status"] == "success", record
    archives = sorted((tmp_path / "archives").glob("*.tar.zst.age"))
    assert [a.name for a in archives] == [record["archive"]["name"]]
    stored = archives[0].read_bytes()
    assert stored.startswith(MAGIC) and b"not for Google's eyes" not in stored
    assert record["archive"]["sha256"] == hashlib.sha256(stored).hexdigest()
    listed = daemon.ctl_json("list")["backups"]
    assert [b["name"] for b in listed] == [archives[0].name]
    for index, key in enumerate(keys):
        out = age_restore(archives[0], key.identity, tmp_path / f"restored-{index}")
        assert (out / "files" / "notes.txt").read_text() == (tmp_path / "data" / "notes.txt").read_text()
        assert (out / "files" / "sub" / "data.bin").read_bytes() == (tmp_path / "data" / "sub" / "data.bin").read_bytes()


def readme_block(containing: str) -> str:
    """The README's Encryption section's shell block that holds `containing`."""
    section = README.read_text().split("## Encryption\n", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```sh\n")[1:]]
    return next(block for block in blocks if containing in block)


def test_the_readme_restore_commands_work_as_written(tmp_path, start_daemon):
    make_tree(tmp_path / "data")
    key = x25519(tmp_path, "backup-key.txt")
    config = write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")},
                          destinations={"local": local_destination(tmp_path / "var" / "archives")},
                          jobs={"main": job(["files"], encrypt_to=[key.recipient])})
    assert start_daemon(config).ctl_json("trigger", "--wait")["status"] == "success"
    script = readme_block("age -d -i backup-key.txt")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "files/notes.txt" in done.stdout and "MANIFEST.json" in done.stdout
    assert (tmp_path / "var" / "restore-age" / "files" / "notes.txt").read_text() == \
        (tmp_path / "data" / "notes.txt").read_text()
