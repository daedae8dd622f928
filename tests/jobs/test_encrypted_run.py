"""A run of a job with encrypt_to, in-process: a .tar.zst.age stored whose recorded sha256 is of the stored
bytes; an encryption that fails fails the run as an archive error with nothing stored or left in the spool."""
from __future__ import annotations

import dataclasses
import hashlib

from backupd.config import load
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.age_keys import age_restore, needs_age, x25519
from tests.configs import directory_source, job, write_config

pytestmark = needs_age


def make_run(tmp_path, recipient: str) -> Run:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("content\n")
    config = load(write_config(tmp_path, sources={"files": directory_source(data)},
                               jobs={"main": job(["files"], encrypt_to=[recipient])}))
    return Run(config=config, job=config.jobs["main"], history=History(config.daemon.state_dir))


def test_an_encrypted_run_stores_an_age_file_that_restores(tmp_path):
    key = x25519(tmp_path / "keys")
    record = make_run(tmp_path, key.recipient).execute()
    assert record.status == "success", record.error
    assert record.archive.name.endswith(".tar.zst.age")
    stored = tmp_path / "archives" / record.archive.name
    assert record.archive.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert record.archive.size == stored.stat().st_size
    out = age_restore(stored, key.identity, tmp_path / "restored")
    assert (out / "files" / "f.txt").read_text() == "content\n"
    assert not list((tmp_path / "state" / "spool").iterdir())


def test_an_encryption_that_fails_fails_the_run_as_an_archive_error_and_stores_nothing(tmp_path):
    key = x25519(tmp_path / "keys")
    run = make_run(tmp_path, key.recipient)
    run.job = dataclasses.replace(run.job, encrypt_to=("age1" + "q" * 58,))     # past the configuration's check
    record = run.execute()
    assert record.status == "failed" and record.error.category == "archive"
    assert record.error.message.startswith("cannot encrypt the archive: ") and "\n" not in record.error.message
    assert record.archive is None
    assert not (tmp_path / "archives").exists() or not list((tmp_path / "archives").iterdir())
    assert not list((tmp_path / "state" / "spool").iterdir())
