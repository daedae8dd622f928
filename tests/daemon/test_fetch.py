"""The fetch and verify commands on a real ControlServer over real Unix sockets, with backups made by the
real runner: the stream carries the stored bytes, a failing destination ends it with an error frame, only
root and the daemon's user may fetch (a control_group member is refused, and the refusal is logged)."""
from __future__ import annotations

import grp
import logging
import os
import socket
from types import SimpleNamespace

import pytest

from backupd.config import load
from backupd.daemon import protocol as proto
from backupd.daemon.control import Authorizer
from backupd.daemon.fetch import NEEDS_ROOT, FetchHandlers
from backupd.daemon.stream import StreamFailed, StreamReader
from backupd.jobs.history import History
from backupd.jobs.runner import Run
from tests.configs import directory_source, job, local_destination, write_config
from tests.daemon.test_control import NOBODY, call_as, make_server, needs_root, sockdir  # noqa: F401


@pytest.fixture
def daemon(tmp_path):
    """What the handlers read of a daemon: its configuration and history, with one backup made."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "blob").write_bytes(os.urandom(3 << 20))
    config = load(write_config(tmp_path, sources={"files": directory_source(data)},
                               destinations={"disk": local_destination(tmp_path / "disk")},
                               jobs={"main": job(["files"], ["disk"])}))
    history = History(config.daemon.state_dir)
    record = Run(config=config, job=config.jobs["main"], history=history, trigger="manual").execute()
    assert record.status == "success"
    yield SimpleNamespace(config=config, history=history, record=record, disk=tmp_path / "disk",
                          metrics_changed=lambda: None)     # what a FetchHandlers calls of its daemon
    history.close()


def fetch(path: str, args: dict):
    """(the reply's result, the streamed bytes, the trailer) of one fetch request."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        proto.send_frame(sock, proto.request("f1", "fetch", args))
        result = proto.final_result(proto.recv_frame(sock, proto.MAX_REPLY))
        reader = StreamReader(sock, result["size"])
        data = b"".join(reader)
        return result, data, reader.trailer


def test_fetch_streams_the_stored_archive_and_logs_the_peer(daemon, make_server, caplog):
    _, path = make_server(FetchHandlers(daemon).table())
    archive = daemon.record.archive
    with caplog.at_level(logging.INFO, logger="backupd.control"):
        result, data, trailer = fetch(path, {"backup": daemon.record.run_id[:8]})
    assert data == (daemon.disk / archive.name).read_bytes()
    assert (result["name"], result["sha256"], result["size"], result["destination"]) == (
        archive.name, archive.sha256, archive.size, "disk")
    assert trailer == {"sha256": archive.sha256, "size": archive.size}
    fetches = [r for r in caplog.records if getattr(r, "audit", None) == "fetch"]
    assert fetches and fetches[0].peer_uid == os.getuid() and fetches[0].archive == archive.name


def test_an_unknown_backup_is_an_error_reply_and_nothing_is_streamed(daemon, make_server):
    _, path = make_server(FetchHandlers(daemon).table())
    with pytest.raises(proto.RemoteError, match="no backup 'nope.tar.zst' found") as caught:
        fetch(path, {"backup": "nope.tar.zst"})
    assert caught.value.code == "not_found"
    with pytest.raises(proto.RemoteError, match="argument 'backup' must be str"):
        fetch(path, {"backup": 7})


def test_a_copy_grown_past_its_record_ends_the_stream_with_an_error(daemon, make_server):
    _, path = make_server(FetchHandlers(daemon).table())
    with open(daemon.disk / daemon.record.archive.name, "ab") as stored:
        stored.write(b"appended garbage")
    with pytest.raises(StreamFailed, match=f"more than the recorded {daemon.record.archive.size} bytes"):
        fetch(path, {"backup": "latest"})


def test_verify_reports_and_records_the_result(daemon, make_server):
    _, path = make_server(FetchHandlers(daemon).table())
    good = proto.call(path, "verify", {"backup": "latest", "destination": "disk", "sample": 5})
    assert good["status"] == "success" and good["against_source"]["unchanged"] == 1
    stored = daemon.disk / daemon.record.archive.name
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(data)
    bad = proto.call(path, "verify", {"backup": "latest"})
    assert bad["status"] == "failed" and bad["problems"][0].startswith("archive sha256 is")
    assert [v.status for v in daemon.history.verifications()] == ["failed", "success"]
    assert daemon.history.failed_checks("disk") == {daemon.record.archive.name}


def call_as_member(path: str, command: str, args: dict) -> dict:
    """The request from a forked child that runs as nobody, in the control group `users`."""
    return call_as(path, NOBODY, NOBODY, [grp.getgrnam("users").gr_gid], command, args)


def test_a_control_group_member_may_not_fetch_but_root_may(daemon, make_server, caplog):
    needs_root()
    _, path = make_server(FetchHandlers(daemon).table(), authorizer=Authorizer("users"))
    with caplog.at_level(logging.WARNING, logger="backupd.control"):
        refused = call_as_member(path, "fetch", {"backup": "latest"})
        sampled = call_as_member(path, "verify", {"backup": "latest", "sample": 3})
    assert refused == {"ok": False, "message": NEEDS_ROOT, "code": "not_permitted"}
    assert not sampled["ok"] and "needs root" in sampled["message"]
    refusals = [r for r in caplog.records if getattr(r, "audit", None) == "refused"]
    assert [(r.peer_uid, r.command) for r in refusals] == [(NOBODY, "fetch"), (NOBODY, "verify --against-source")]
    assert call_as_member(path, "verify", {"backup": "latest"})["result"]["status"] == "success"
    _, data, _ = fetch(path, {"backup": "latest"})
    assert data == (daemon.disk / daemon.record.archive.name).read_bytes()
