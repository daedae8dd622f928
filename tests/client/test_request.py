"""The client's request(), on which backupctl is built: the daemon's answer as a dict, whatever its shape; each
way of not getting one is a ClientError saying how; the result classes load only when first named."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backupd.client import Client, DaemonUnreachable, PermissionDenied, RemoteError
from backupd.client.errors import BUSY, GARBLED, SILENT, UNREACHABLE
from backupd.daemon import protocol as proto
from tests.cli.peers import RawPeer, busy, read_request


def answering(result: dict, events: tuple = (), busy_first: int = 0):
    """A peer's answer(): `busy_first` busy replies, then `events` and `result` to the request."""
    def answer(conn, index):
        if index < busy_first:
            return busy(conn)
        with conn:
            request_id, command, args = read_request(conn)
            for event in events:
                proto.send_frame(conn, proto.event_frame(request_id, event))
            proto.send_frame(conn, proto.ok_reply(request_id, {**result, "asked": [command, args]}))
    return answer


def test_request_gives_the_answer_as_the_daemon_sent_it_after_busy_replies():
    seen = []
    odd = {"runs": [{"run_id": "r1", "status": "ok"}], "shiny_new_field": 1}   # a RunRecord needs job, trigger
    with RawPeer(answering(odd, events=({"type": "progress", "run_id": "r1"},), busy_first=2)) as peer:
        result = Client(peer.path, timeout=10).request("history", {"limit": 1}, on_event=seen.append)
        assert peer.accepted == 3
    assert result == {**odd, "asked": ["history", {"limit": 1}]}
    assert seen == [{"type": "progress", "run_id": "r1"}]


def garbled(conn, index):
    with conn:
        read_request(conn)
        conn.sendall(b"\x00\x00\x00\x05{nope")


@pytest.mark.parametrize("answer, reason, words", [
    (lambda conn, index: busy(conn), BUSY, "is busy: it answered 'daemon busy, try again' for 1s"),
    (None, SILENT, "did not answer within 1s"),
    (garbled, GARBLED, "did not answer properly"),
], ids=["busy", "silent", "garbled"])
def test_each_way_of_not_answering_is_daemon_unreachable_with_its_reason(answer, reason, words):
    with RawPeer(answer) as peer:
        with pytest.raises(DaemonUnreachable) as caught:
            Client(peer.path, timeout=1).request("status")
    assert caught.value.reason == reason and f"the daemon at {peer.path} " in str(caught.value)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_no_socket_is_unreachable(tmp_path):
    with pytest.raises(DaemonUnreachable) as caught:
        Client(tmp_path / "none.sock", timeout=1).request("status")
    assert caught.value.reason == UNREACHABLE and "is it running?" in str(caught.value)


def refusing(message: str, code: str, details: dict | None = None):
    def answer(conn, index):
        with conn:
            request_id, _, _ = read_request(conn)
            proto.send_frame(conn, proto.error_reply(request_id, message, code, details))
    return answer


def test_the_daemon_saying_no_keeps_its_code_and_details_and_a_refused_user_is_permission_denied():
    with RawPeer(refusing("invalid", "failed", {"errors": ["At 'x': bad"]})) as peer:
        with pytest.raises(RemoteError) as caught:
            Client(peer.path, timeout=5).request("reload")
    assert (caught.value.message, caught.value.code, caught.value.details) == ("invalid", "failed",
                                                                               {"errors": ["At 'x': bad"]})
    with RawPeer(refusing("not permitted", "not_permitted")) as peer:
        with pytest.raises(PermissionDenied, match="refused this user"):
            Client(peer.path, timeout=5).request("status")


def test_the_result_classes_load_only_when_first_named():
    code = ("import json, sys, backupd.client as c; before = 'backupd.client.results' in sys.modules; "
            "c.RunRecord; print(json.dumps([before, 'backupd.client.results' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [False, True]
