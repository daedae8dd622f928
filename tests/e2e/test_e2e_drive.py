"""The real daemon uploads to the loopback Drive; a Drive outage keeps the archive for the next run."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.configs import job, local_destination, write_config
from tests.fakes.drive import DriveServer
from tests.fakes.oauth import new_key


@pytest.fixture(scope="module")
def rsa_key():
    return new_key()


def start(tmp_path, start_daemon, drive, rsa_key):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "blob").write_bytes(os.urandom(1_500_000))
    credentials = tmp_path / "creds"
    credentials.mkdir(exist_ok=True)
    drive.write_credentials(credentials / "sa.json", drive.oauth.service_account(key=rsa_key))
    drive_destination = {"type": "gdrive", "credentials": "sa.json", "folder": "backupd/e2e", "endpoint": drive.url,
                         "chunk_size": "256KiB", "retry_deadline": "3s", "timeout": "3s"}
    config = write_config(tmp_path, jobs={"main": job(["files"], ["local", "drive"])}, destinations={
        "local": local_destination(tmp_path / "archives"), "drive": drive_destination})
    return start_daemon(config, env={"CREDENTIALS_DIRECTORY": str(credentials)})


def test_backup_lands_on_drive_with_id_and_link(tmp_path, start_daemon, rsa_key):
    with DriveServer() as drive:
        daemon = start(tmp_path, start_daemon, drive, rsa_key)
        record = daemon.ctl_json("trigger", "--wait")
        assert record["status"] == "success", record
        remote = next(d for d in record["destinations"] if d["name"] == "drive")
        assert remote["file_id"] and remote["link"].startswith("http")
        local = (tmp_path / "archives" / record["archive"]["name"]).read_bytes()
        assert drive.content(remote["file_id"]) == local
        assert hashlib.sha256(local).hexdigest() == record["archive"]["sha256"]
        listed = daemon.ctl_json("list", "--destination", "drive")["backups"]
        assert [(b["name"], b["file_id"]) for b in listed] == [(record["archive"]["name"], remote["file_id"])]
        for command in ("history", "status"):
            shown = daemon.ctl(command).stdout
            assert remote["link"] in shown and remote["file_id"] in shown, (command, shown)
        assert "drive success" in daemon.ctl("history").stdout
        secret_bits = [rsa_key_part for rsa_key_part in json.loads((tmp_path / "creds" / "sa.json").read_text())
                       ["private_key"].splitlines()[1:3]]
        log_text = daemon.log_path.read_text()
        assert all(bit not in log_text for bit in secret_bits)
        assert all(token not in log_text for token in drive.oauth.issued)


def test_drive_down_keeps_archive_and_next_run_uploads_it(tmp_path, start_daemon, rsa_key):
    drive = DriveServer().start()
    port = drive.port
    daemon = start(tmp_path, start_daemon, drive, rsa_key)
    drive.stop()
    failed = daemon.ctl("--json", "trigger", "--wait")
    record = json.loads(failed.stdout)
    assert failed.returncode == 1 and record["error"]["category"] == "destination"
    assert record["error"]["kind"] == "network"
    statuses = {d["name"]: d["status"] for d in record["destinations"]}
    assert statuses == {"local": "success", "drive": "pending-upload"}
    assert (tmp_path / "state" / "spool" / record["archive"]["name"]).exists()
    assert daemon.ctl_json("status")["jobs"][0]["pending_uploads"] == 1

    with DriveServer(port=port) as back:
        back.state, back.oauth = drive.state, drive.oauth   # the same Drive account comes back
        again = daemon.ctl_json("trigger", "--wait")
        assert again["status"] == "success", again
        names = {f.name for f in back.files.values()}
        assert {record["archive"]["name"], again["archive"]["name"]} <= names
    assert not list((tmp_path / "state" / "spool").glob("*.tar.zst"))
    assert daemon.ctl_json("status")["jobs"][0]["pending_uploads"] == 0
