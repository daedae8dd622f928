"""The control socket server over real Unix sockets: dispatch, errors, bounds, peers and authorization."""
import grp
import json
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest

from backupd.daemon import protocol as proto
from tests.waiting import wait_for
from backupd.daemon.control import Authorizer, ClientGone, CommandError, ControlServer, Peer, check_args
from backupd.daemon.peers import _proc_groups

NOBODY = 65534


def needs_root():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: this test must run as root (it switches to a stranger uid)")
        pytest.skip("needs root to switch a child process to a stranger uid")


@pytest.fixture
def sockdir():
    """A short, world-reachable directory (Unix socket paths are limited to 108 bytes)."""
    path = tempfile.mkdtemp(prefix="ctl-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_server(sockdir):
    servers = []

    def make(handlers=None, authorizer=lambda peer: True, **options):
        path = os.path.join(sockdir, f"s{len(servers)}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o666)
        listener.listen(64)
        server = ControlServer(listener, handlers or {}, authorizer, **options)
        server.start()
        servers.append(server)
        return server, path

    yield make
    for server in servers:
        server.stop(timeout=2)


def raw_exchange(path, data: bytes, shut=True) -> dict:
    """Send raw bytes and read the server's one reply frame."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        return proto.recv_frame(sock, proto.MAX_REPLY)


def echo(args, peer, emit):
    return {"args": args, "peer": [peer.pid, peer.uid, peer.gid]}


def test_request_reaches_handler_with_args_and_peer_credentials_and_is_logged(make_server, caplog):
    _, path = make_server({"echo": echo})
    with caplog.at_level(logging.INFO, logger="backupd.control"):
        result = proto.call(path, "echo", {"job": "daily", "wait": False})
    assert result == {"args": {"job": "daily", "wait": False}, "peer": [os.getpid(), os.getuid(), os.getgid()]}
    logged = [r for r in caplog.records if getattr(r, "command", None) == "echo"]
    assert len(logged) == 1 and logged[0].peer_uid == os.getuid() and logged[0].peer_pid == os.getpid()


def test_events_come_before_the_final_result(make_server):
    def progress(args, peer, emit):
        for percent in (10, 60, 100):
            emit({"type": "progress", "percent": percent})
        return {"status": "success"}

    _, path = make_server({"trigger": progress})
    events = []
    assert proto.call(path, "trigger", on_event=events.append) == {"status": "success"}
    assert [e["percent"] for e in events] == [10, 60, 100]


def test_command_error_becomes_ok_false_with_details(make_server):
    def reload(args, peer, emit):
        raise CommandError("the new configuration is invalid", details={"errors": ["At 'jobs.x': bad"]})

    _, path = make_server({"reload": reload})
    with pytest.raises(proto.RemoteError) as info:
        proto.call(path, "reload")
    assert info.value.message == "the new configuration is invalid"
    assert info.value.details == {"errors": ["At 'jobs.x': bad"]}


def test_unexpected_exception_is_internal_error_logged_and_server_carries_on(make_server, caplog):
    def boom(args, peer, emit):
        raise RuntimeError("token=hunter2")

    _, path = make_server({"boom": boom, "echo": echo, "odd": lambda a, p, e: ["not", "a", "dict"]})
    with caplog.at_level(logging.INFO, logger="backupd.control"):
        for command in ("boom", "odd"):
            with pytest.raises(proto.RemoteError) as info:
                proto.call(path, command)
            assert (info.value.message, info.value.code) == ("internal error", "internal")
            assert "hunter2" not in str(info.value.details)
    assert any(r.exc_info and r.command == "boom" for r in caplog.records)
    assert proto.call(path, "echo")["args"] == {}


def test_unknown_command_names_the_known_ones(make_server):
    _, path = make_server({"status": echo})
    with pytest.raises(proto.RemoteError, match=r"unknown command 'stauts'; known: ping, status") as info:
        proto.call(path, "stauts")
    assert info.value.code == "unknown_command"


@pytest.mark.parametrize("data, code, message", [
    (b"\x00\x00\x00\x05hello", "bad_request", "bad request: frame is not JSON"),
    (struct.pack(">I", proto.MAX_REQUEST + 1) + b"{}", "bad_request", "bad request: frame too large"),
    (struct.pack(">I", 2) + b"[]", "bad_request", "bad request: frame is a JSON list"),
    (struct.pack(">I", 10) + b'{"id": 1}', "bad_request", "bad request: truncated frame"),
])
def test_malformed_input_gets_an_error_reply_and_the_server_keeps_serving(make_server, data, code, message):
    _, path = make_server({"echo": echo})
    reply = raw_exchange(path, data)
    assert reply["ok"] is False and reply["error"]["code"] == code
    assert reply["error"]["message"].startswith(message)
    assert proto.call(path, "echo", {"n": 1})["args"] == {"n": 1}


def test_a_request_missing_fields_is_answered_with_its_id(make_server):
    _, path = make_server()
    body = json.dumps({"id": "abc", "args": {}}).encode()
    reply = raw_exchange(path, struct.pack(">I", len(body)) + body)
    assert reply == {"id": "abc", "ok": False,
                     "error": {"message": "bad request: request has no 'command' field", "code": "bad_request"}}


def test_a_silent_client_times_out(make_server):
    server, path = make_server(read_timeout=0.3)
    started = time.monotonic()
    reply = raw_exchange(path, b"\x00\x00", shut=False)
    assert reply["error"] == {"message": "no complete request within 0.3s", "code": "timeout"}
    assert time.monotonic() - started < 3
    assert server.ping()


def blocking_handler(gate: threading.Event, inside: list):
    def handler(args, peer, emit):
        inside.append(args["n"])
        if not gate.wait(10):
            raise AssertionError("gate never opened")
        return {"n": args["n"]}
    return handler


def test_concurrent_clients_are_served_at_once_and_the_bound_answers_busy(make_server):
    gate, inside = threading.Event(), []
    server, path = make_server({"block": blocking_handler(gate, inside)}, max_connections=3)
    results = {}
    clients = [threading.Thread(target=lambda n=n: results.update({n: proto.call(path, "block", {"n": n})}))
               for n in range(3)]
    for client in clients:
        client.start()
    wait_for(lambda: len(inside) == 3, what="three handlers running at the same time")
    with pytest.raises(proto.RemoteError, match="daemon busy") as info:
        proto.call(path, "block", {"n": 99})
    assert info.value.code == "busy" and 99 not in inside
    assert server.ping()  # a busy answer still proves the loop is alive
    gate.set()
    for client in clients:
        client.join(5)
    assert results == {n: {"n": n} for n in range(3)}
    wait_for(lambda: server.health()["connections"] == 0, what="connection slots released")
    assert proto.call(path, "block", {"n": 4}) == {"n": 4}


def test_a_client_that_leaves_during_events_stops_the_handler(make_server):
    gone = threading.Event()

    def endless(args, peer, emit):
        try:
            while True:
                emit({"type": "progress", "pad": "x" * 65536})
        except ClientGone:
            gone.set()
            raise

    server, path = make_server({"endless": endless})
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        proto.send_frame(sock, proto.request("r", "endless"))
        assert proto.recv_frame(sock, proto.MAX_REPLY)["event"]["type"] == "progress"
    assert gone.wait(5)
    wait_for(lambda: server.health()["connections"] == 0, what="slot released")
    assert server.ping()


def test_stop_closes_the_listener_but_keeps_the_socket_path(make_server):
    server, path = make_server()
    assert server.health()["accepting"] and server.ping()
    server.stop(timeout=2)
    assert os.path.exists(path)
    assert not server.health()["accepting"]
    with pytest.raises(ConnectionRefusedError):
        proto.call(path, "ping")


def test_stop_cuts_a_connection_whose_handler_does_not_finish(make_server):
    gate, inside = threading.Event(), []
    server, path = make_server({"block": blocking_handler(gate, inside)})
    outcome = []
    client = threading.Thread(target=lambda: outcome.append(_call_outcome(path, "block", {"n": 1})))
    client.start()
    wait_for(lambda: inside == [1], what="handler running")
    started = time.monotonic()
    server.stop(timeout=0.3)
    client.join(5)
    gate.set()
    assert time.monotonic() - started < 3
    assert outcome == ["ConnectionClosed"]


def _call_outcome(path, command, args):
    try:
        return proto.call(path, command, args)
    except Exception as exc:
        return type(exc).__name__


def test_authorizer_rules():
    users = grp.getgrnam("users").gr_gid
    allow = Authorizer("users", own_uid=1234)
    assert allow(Peer(1, 0, 0)) and allow(Peer(1, 1234, 1234))
    assert allow(Peer(1, 2000, users)) and allow(Peer(1, 2000, 2000, frozenset({5, users})))
    assert not allow(Peer(1, 2000, 2000, frozenset({5})))
    nobody_group = Authorizer("no-such-group-here", own_uid=1234)
    assert nobody_group.gid is None and not nobody_group(Peer(1, 2000, 2000, frozenset({users})))


def test_proc_groups_reads_supplementary_groups():
    assert _proc_groups(os.getpid()) == frozenset(os.getgroups())
    assert _proc_groups(2 ** 22 + 12345) == frozenset()


def call_as(path, uid, gid, groups, command="echo", args=None):
    """Fork a child that drops to uid/gid/groups, calls the server and reports the outcome through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                outcome = {"ok": True, "result": proto.call(path, command, args, timeout=5)}
            except proto.RemoteError as exc:
                outcome = {"ok": False, "message": exc.message, "code": exc.code}
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_a_stranger_uid_is_refused_and_audited(make_server, caplog):
    needs_root()
    _, path = make_server({"echo": echo}, authorizer=Authorizer("users"))
    with caplog.at_level(logging.WARNING, logger="backupd.control"):
        outcome = call_as(path, NOBODY, NOBODY, [])
    assert outcome == {"ok": False, "message": "not permitted", "code": "not_permitted"}
    refusals = [r for r in caplog.records if getattr(r, "audit", None) == "refused"]
    assert refusals and refusals[0].peer_uid == NOBODY and refusals[0].command == "echo"


def test_a_member_of_the_control_group_by_supplementary_group_is_served(make_server):
    needs_root()
    users = grp.getgrnam("users").gr_gid
    _, path = make_server({"echo": echo}, authorizer=Authorizer("users"))
    outcome = call_as(path, NOBODY, NOBODY, [users, 5])
    assert outcome["ok"] and outcome["result"]["peer"][1:] == [NOBODY, NOBODY]


def test_peer_groups_are_those_of_the_connecting_process(make_server):
    needs_root()
    _, path = make_server({"groups": lambda a, peer, e: {"groups": sorted(peer.groups)}})
    outcome = call_as(path, NOBODY, NOBODY, [5, 100], command="groups")
    assert outcome == {"ok": True, "result": {"groups": [5, 100]}}


def test_check_args_fills_defaults_and_names_the_bad_argument():
    spec = {"job": ((str, type(None)), None), "wait": ((bool,), False), "limit": ((int,), 20)}
    assert check_args({"wait": True}, spec) == {"job": None, "wait": True, "limit": 20}
    with pytest.raises(CommandError, match=r"argument 'limit' must be int, got bool") as info:
        check_args({"limit": True}, spec)
    assert info.value.code == "bad_args"
    with pytest.raises(CommandError, match=r"argument 'job' must be str or null, got int"):
        check_args({"job": 3}, spec)
    with pytest.raises(CommandError, match=r"unknown argument 'jbo'"):
        check_args({"jbo": "x"}, spec)


# -- starvation: slow clients, bursts (the loop reads requests; only complete ones take a slot) -----------------
def frame_bytes(obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def trickle(path: str, every: float, replies: list) -> None:
    """Send a valid request one byte every `every` s; record the server's reply (or None if it just closes)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.settimeout(every)
        for byte in frame_bytes(proto.request("slow", "status")):
            try:
                sock.sendall(bytes([byte]))
                replies.append(proto.recv_frame(sock, proto.MAX_REPLY))
                return
            except TimeoutError:
                continue
            except (OSError, proto.ProtocolError):
                break
        replies.append(None)


def test_clients_trickling_their_request_neither_block_status_nor_outlast_the_request_deadline(make_server):
    server, path = make_server({"status": echo}, read_timeout=1.5)
    replies: list = []
    slow = [threading.Thread(target=trickle, args=(path, 0.25, replies), daemon=True) for _ in range(16)]
    for client in slow:
        client.start()
    wait_for(lambda: server.health()["pending"] == 16, what="16 trickling clients connected")
    for n in range(20):
        assert proto.call(path, "status", {"n": n}, timeout=2)["args"] == {"n": n}
    for client in slow:
        client.join(10)
    # each kept sending, yet the whole request had 1.5 s: one deadline per request, not per recv
    assert [reply and reply["error"] for reply in replies] == [
        {"message": "no complete request within 1.5s", "code": "timeout"}] * 16


def test_a_thousand_status_requests_from_fifty_concurrent_clients_are_all_answered(make_server):
    together = threading.Barrier(50, timeout=10)   # the first round: all fifty inside a handler at once

    def status(args, peer, emit):
        if args.get("first"):
            together.wait()
        return {"jobs": []}

    _, path = make_server({"status": status})
    outcomes: list = []

    def client() -> None:
        for n in range(20):
            outcomes.append(_call_outcome(path, "status", {"first": n == 0}))

    clients = [threading.Thread(target=client) for _ in range(50)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    assert len(outcomes) == 1000
    assert [outcome for outcome in outcomes if outcome != {"jobs": []}] == []


def test_when_every_pending_place_is_taken_the_oldest_connection_makes_room(make_server):
    server, path = make_server({"status": echo}, max_pending=4)
    silent = [socket.socket(socket.AF_UNIX) for _ in range(4)]
    try:
        for count, sock in enumerate(silent, 1):   # one by one: silent[0] is the oldest
            sock.settimeout(5)
            sock.connect(path)
            wait_for(lambda: server.health()["pending"] == count, what=f"{count} silent connections pending")
        assert proto.call(path, "status", timeout=5)["args"] == {}
        evicted = proto.recv_frame(silent[0], proto.MAX_REPLY)
        assert evicted["error"]["code"] == proto.BUSY
        assert "oldest" in evicted["error"]["message"]
        assert server.health()["pending"] == 3
    finally:
        for sock in silent:
            sock.close()


# -- hostile frames: each gets a protocol error reply, nothing raises ----------------------------------------------
def body_frame(text: str) -> bytes:
    body = text.encode()
    return struct.pack(">I", len(body)) + body


DEEP = '{"id": "d", "command": "status", "args": {"job": ' + "[" * 1000 + "]" * 1000 + "}}"
NESTED = '{"id": "n", "command": "status", "args": {"job": ' + "[" * 40 + "]" * 40 + "}}"
HUGE_INT = '{"id": "h", "command": "history", "args": {"limit": ' + "9" * 5000 + "}}"
SURROGATE_ID = '{"id": "\\udc80", "command": "status"}'
SURROGATE_KEY = '{"id": "k", "command": "status", "args": {"\\ud800x": 1}}'


@pytest.mark.parametrize("text, request_id, message", [
    (DEEP, None, "bad request: frame is not usable JSON: nested too deeply"),
    (NESTED, "n", "bad request: request is nested more than 32 deep at 'args.job"),
    (HUGE_INT, None, "bad request: frame is not usable JSON: an integer with too many digits"),
    (SURROGATE_ID, None, "bad request: request holds a string that is not valid Unicode (a lone surrogate) at 'id'"),
    (SURROGATE_KEY, "k", "bad request: request holds a string that is not valid Unicode (a lone surrogate) at "
                         "'args.\\\\ud800x'"),
])
def test_hostile_frames_get_a_bad_request_reply_and_nothing_raises(make_server, caplog, text, request_id, message):
    _, path = make_server({"status": echo, "history": echo})
    with caplog.at_level(logging.DEBUG, logger="backupd.control"):
        reply = raw_exchange(path, body_frame(text), shut=False)
    assert (reply["id"], reply["ok"], reply["error"]["code"]) == (request_id, False, "bad_request")
    assert reply["error"]["message"].startswith(message)
    assert not [record for record in caplog.records if record.exc_info]
    assert proto.call(path, "status", {"job": "daily"})["args"] == {"job": "daily"}


@pytest.mark.parametrize("command", ["trigger", "history", "list"])
@pytest.mark.parametrize("job, named", [([], "an array"), ({}, "an object"), (3, "an integer"), (True, "true or false")])
def test_an_argument_of_the_wrong_json_type_is_refused_before_the_handler_runs(make_server, command, job, named):
    called = []
    _, path = make_server({command: lambda args, peer, emit: called.append(args) or {}})
    with pytest.raises(proto.RemoteError) as info:
        proto.call(path, command, {"job": job})
    assert (info.value.message, info.value.code) == (f"argument 'job' must be a string or null, not {named}",
                                                     "bad_args")
    assert called == []


@pytest.mark.parametrize("args, message", [
    ({"limit": "5"}, "argument 'limit' must be an integer or null, not a string"),
    ({"limit": False}, "argument 'limit' must be an integer or null, not true or false"),
    ({"wait": 1}, "argument 'wait' must be true or false or null, not an integer"),
    ({"destination": ["a"]}, "argument 'destination' must be a string or null, not an array"),
])
def test_every_argument_in_the_table_is_checked(make_server, args, message):
    _, path = make_server({"any": echo})
    with pytest.raises(proto.RemoteError, match=f"^{message}$"):
        proto.call(path, "any", args)
    assert proto.call(path, "any", {"job": None, "limit": 5, "wait": True, "other": [1]})["args"]["limit"] == 5
