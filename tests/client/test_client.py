"""backupd.client against a real daemon (and, for replies a daemon gives only to strangers, a real socket)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest

from backupd.client import (BackupFailed, Client, DaemonStatus, DaemonUnreachable, JobStatus, PermissionDenied,
                            Progress, RemoteError, RunRecord, Started, StoredBackup)
from backupd.daemon import protocol as proto
from tests.configs import command_source, directory_source, job, write_config
from tests.e2e.daemon_harness import Daemon
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("client")
    (base / "data").mkdir()
    (base / "data" / "notes.txt").write_bytes(os.urandom(300_000))
    config = write_config(base, jobs={"main": job(["files"]), "broken": job(["fails"], schedule="0 4 * * *")},
                          sources={"files": directory_source(base / "data"),
                                   "fails": command_source(["sh", "-c", "echo disk on fire >&2; exit 7"])})
    started = Daemon(base, config).start()
    yield started
    started.stop()


@pytest.fixture
def client(daemon):
    return Client(daemon.socket, timeout=30)


def test_importing_the_client_loads_only_the_standard_library():
    code = ("import json, sys; before = set(sys.modules); import backupd.client; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    outside = {name for name in loaded if name.split(".")[0] not in sys.stdlib_module_names | {"backupd"}}
    assert "backupd.client" in loaded and not outside, outside
    assert not [name for name in loaded if name.startswith(("backupd.jobs", "backupd.destinations.gdrive"))]


def test_trigger_and_wait_returns_the_record_with_progress(client, daemon):
    seen: list[Progress] = []
    record = client.trigger("main", wait=True, on_progress=seen.append)
    assert isinstance(record, RunRecord) and record.ok and record.trigger == "manual"
    stored = daemon.dir / "archives" / record.archive_name
    assert stored.stat().st_size == record.size and len(record.sha256) == 64
    assert [(d.name, d.status) for d in record.destinations] == [("local", "success")]
    assert record.started <= record.ended <= datetime.now(timezone.utc)
    assert all(p.run_id == record.run_id and p.job == "main" for p in seen)
    assert record.to_dict()["archive"]["name"] == record.archive_name
    assert record.to_dict()["started"].endswith("Z")
    assert json.loads(json.dumps(record.to_dict()))["destinations"][0]["status"] == "success"


def test_history_and_listing_agree_with_the_run(client):
    record = client.trigger("main", wait=True)
    newest = client.history("main", limit=1)
    assert newest == [record]
    assert len(client.history(limit=50)) >= 2
    listing = client.list_backups(job="main")
    assert record.archive_name in [b.name for b in listing.backups] and listing.errors == ()
    assert {b.destination for b in listing.backups} == {"local"}


def test_a_full_is_asked_for_and_each_record_and_listing_says_its_kind(client, daemon):
    wait_for(lambda: client.status().job("main").running is None, what="the runs of main before to end")
    started = client.trigger("main", full=True)
    assert isinstance(started, Started) and started.started and started.full and started.note == ""
    wait_for(lambda: client.status().job("main").running is None, what="the full run's end")
    record = client.history("main", limit=1)[0]
    assert record.run_id == started.run_id and record.kind == "full" and not record.archive.differential
    assert record.to_dict()["archive"]["kind"] == "full"
    stored = {backup.name: backup for backup in client.list_backups(job="main").backups}[record.archive_name]
    assert (stored.kind, stored.base, stored.base_run, stored.set_size) == ("full", "", "", record.size)
    with pytest.raises(RemoteError, match="full and upload_pending do not go together") as refused:
        client.trigger("main", full=True, upload_pending=True)
    assert refused.value.code == "bad_args"


def test_trigger_without_wait_and_status(client):
    started = client.trigger("main")
    assert isinstance(started, Started) and started.job == "main" and len(started.run_id) == 12
    status = client.status()
    assert isinstance(status, DaemonStatus) and status.pid > 0 and status.version
    assert [j.name for j in status.jobs] == ["main", "broken"]
    main = status.job("main")
    assert main.schedule == "0 3 * * *" and main.timezone == "UTC"
    assert client.next_run("main") == main.next_run and main.next_run.hour == 3
    assert client.next_run() == min(main.next_run, status.job("broken").next_run)


def test_a_failed_run_raises_backup_failed_carrying_the_record(client):
    with pytest.raises(BackupFailed) as caught:
        client.trigger("broken", wait=True)
    record = caught.value.record
    assert record.status == "failed" and record.error.category == "source"
    assert "exited with code 7" in record.error.message and "disk on fire" in record.error.message
    assert str(caught.value).startswith(f"run {record.run_id} of job broken failed: source: ")
    assert client.history("broken", limit=1)[0].run_id == record.run_id


def test_the_daemon_saying_no_is_a_remote_error(client):
    with pytest.raises(RemoteError) as caught:
        client.trigger()            # two jobs: the daemon wants a name
    assert "name a job" in caught.value.message and caught.value.code == "failed"
    with pytest.raises(RemoteError, match="no job named 'nope'"):
        client.history("nope")
    with pytest.raises(RemoteError, match="no job named 'nope'"):
        client.next_run("nope")


def test_no_daemon_is_daemon_unreachable(tmp_path):
    with pytest.raises(DaemonUnreachable, match=f"cannot reach the daemon at {tmp_path}/none.sock: "
                                                 "No such file or directory; is it running?"):
        Client(tmp_path / "none.sock", timeout=2).status()


def test_the_socket_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKUPD_SOCKET", str(tmp_path / "env.sock"))
    assert Client().socket == str(tmp_path / "env.sock")
    monkeypatch.delenv("BACKUPD_SOCKET")
    assert Client().socket == "/run/backupd/backupd.sock"


def one_reply_server(path, reply: dict):
    """A real Unix socket that answers one request with `reply` (what a daemon says to a user it refuses)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        with conn:
            request = proto.recv_frame(conn)
            proto.send_frame(conn, {**reply, "id": request["id"]})
        listener.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_refused_user_gets_permission_denied(tmp_path):
    server = one_reply_server(tmp_path / "s.sock", proto.error_reply(None, "not permitted", "not_permitted"))
    with pytest.raises(PermissionDenied, match="refused this user"):
        Client(tmp_path / "s.sock", timeout=5).status()
    server.join(5)


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens any socket")
def test_a_socket_this_user_cannot_open_is_permission_denied(tmp_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "closed.sock"))
    listener.listen(1)
    os.chmod(tmp_path / "closed.sock", 0)
    try:
        with pytest.raises(PermissionDenied, match="Permission denied"):
            Client(tmp_path / "closed.sock", timeout=2).status()
    finally:
        listener.close()


def test_a_reply_of_the_wrong_shape_is_one_remote_error(tmp_path):
    server = one_reply_server(tmp_path / "s.sock", proto.ok_reply(None, {"runs": [{"job": "x"}]}))
    with pytest.raises(RemoteError, match="reply to history has an unexpected shape") as caught:
        Client(tmp_path / "s.sock", timeout=5).history()
    assert caught.value.code == "bad_reply"
    server.join(5)


def test_unknown_fields_from_a_newer_daemon_are_ignored():
    record = RunRecord.from_dict({"run_id": "r1", "job": "j", "trigger": "manual", "status": "success",
                                  "started": "2024-05-01T03:00:00Z", "shiny_new_field": 1,
                                  "destinations": [{"name": "drive", "status": "success", "link": "https://x",
                                                    "future": True}]})
    assert record.link == "https://x" and record.started == datetime(2024, 5, 1, 3, tzinfo=timezone.utc)
    assert record.archive_name is None and record.to_dict()["ended"] is None


def test_a_listing_and_a_record_from_a_daemon_before_differentials_still_say_their_kind():
    old = {"destination": "local", "name": "db-host-20240502T030000Z-bbbb2222-diff-aaaa1111.tar.zst", "size": 5,
           "location": "/srv/x", "job": "db"}
    backup = StoredBackup._from(old)
    assert (backup.kind, backup.base_run, backup.base, backup.differential) == ("differential", "aaaa1111", "", True)
    assert StoredBackup._from({**old, "name": "db-host-20240501T030000Z-aaaa1111.tar.zst"}).kind == "full"
    record = RunRecord.from_dict({"run_id": "r1", "job": "j", "trigger": "manual", "status": "success",
                                  "archive": {"name": "a.tar.zst", "size": 9, "sha256": "ab", "members": 1,
                                              "bytes_in": 3}})
    assert (record.kind, record.archive.set_size, record.archive.base) == ("full", 0, "")
    assert JobStatus.from_dict({"name": "j", "schedule": "x", "timezone": "UTC"}).differential is False
