"""The control socket framing, over real socket pairs."""
import json
import socket
import struct
import threading

import pytest

from backupd.daemon import protocol as proto


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def raw(sock, body: bytes, declared: int | None = None):
    sock.sendall(struct.pack(">I", len(body) if declared is None else declared) + body)


def test_round_trip_keeps_unicode_and_nesting(pair):
    a, b = pair
    message = {"id": "r1", "command": "trigger", "args": {"job": "dåily ✓", "wait": True, "n": [1, None]}}
    proto.send_frame(a, message)
    proto.send_frame(a, {"id": "r2", "command": "status"})
    assert proto.recv_frame(b) == message
    assert proto.parse_request(proto.recv_frame(b)) == ("r2", "status", {})


def test_large_frame_arrives_whole(pair):
    a, b = pair
    big = {"id": "x", "ok": True, "result": {"blob": "z" * 3_000_000}}
    sender = threading.Thread(target=proto.send_frame, args=(a, big))
    sender.start()
    assert proto.recv_frame(b, proto.MAX_REPLY) == big
    sender.join()


def test_oversized_frame_is_refused_before_reading_it(pair):
    a, b = pair
    raw(a, b"", declared=proto.MAX_REQUEST + 1)
    with pytest.raises(proto.ProtocolError, match=r"frame too large: 1048577 bytes, the limit is 1048576"):
        proto.recv_frame(b, proto.MAX_REQUEST)


@pytest.mark.parametrize("payload, declared, message", [
    (b"\x00\x00", None, r"truncated frame: header has 2 of 4 bytes"),
    (b'{"id": "x"', 40, r"truncated frame: body has 10 of 40 bytes"),
])
def test_truncated_frames(pair, payload, declared, message):
    a, b = pair
    if declared is None:
        a.sendall(payload)
    else:
        raw(a, payload, declared)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(proto.ProtocolError, match=message):
        proto.recv_frame(b)


def test_clean_close_between_frames_is_connection_closed(pair):
    a, b = pair
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(proto.ConnectionClosed, match="connection closed by peer"):
        proto.recv_frame(b)


@pytest.mark.parametrize("body, message", [
    (b"not json at all", r"frame is not JSON: Expecting value at char 0"),
    (b"\xff\xfe{}", r"frame is not UTF-8: invalid start byte at byte 0"),
    (b"[1, 2]", r"frame is a JSON list, expected an object"),
    (b'"text"', r"frame is a JSON str, expected an object"),
])
def test_garbage_frames(pair, body, message):
    a, b = pair
    raw(a, body)
    with pytest.raises(proto.ProtocolError, match=message):
        proto.recv_frame(b)


@pytest.mark.parametrize("frame, message", [
    ({"command": "status"}, r"request has no 'id' field"),
    ({"id": 7, "command": "status"}, r"request field 'id' must be str, got int"),
    ({"id": "a"}, r"request has no 'command' field"),
    ({"id": "a", "command": ["status"]}, r"request field 'command' must be str, got list"),
    ({"id": "a", "command": "status", "args": [1]}, r"request field 'args' must be an object, got list"),
])
def test_request_shape_errors(frame, message):
    with pytest.raises(proto.ProtocolError, match=message):
        proto.parse_request(frame)


def test_error_reply_shape_is_json_and_omits_empty_details():
    reply = proto.error_reply("a", "nope", "bad_args")
    assert json.loads(json.dumps(reply)) == {"id": "a", "ok": False, "error": {"message": "nope", "code": "bad_args"}}
    with_details = proto.error_reply("a", "bad config", details={"errors": ["x"]})
    assert with_details["error"]["details"] == {"errors": ["x"]}


def serve_once(listener, frames):
    """Accept one connection, read its request, answer with frames built from the request id."""
    conn, _ = listener.accept()
    with conn:
        request_id, _, _ = proto.parse_request(proto.recv_frame(conn))
        for frame in frames(request_id):
            proto.send_frame(conn, frame)


def test_call_collects_events_then_returns_result(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        frames = lambda rid: [proto.event_frame(rid, {"n": 1}), proto.event_frame(rid, {"n": 2}),
                              proto.ok_reply(rid, {"done": True})]
        server = threading.Thread(target=serve_once, args=(listener, frames))
        server.start()
        events = []
        assert proto.call(path, "trigger", {"wait": True}, on_event=events.append) == {"done": True}
        server.join()
    assert events == [{"n": 1}, {"n": 2}]


def test_call_raises_remote_error_with_details(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        frames = lambda rid: [proto.error_reply(rid, "invalid", "failed", {"errors": ["e1"]})]
        server = threading.Thread(target=serve_once, args=(listener, frames))
        server.start()
        with pytest.raises(proto.RemoteError) as info:
            proto.call(path, "reload")
        server.join()
    assert (info.value.message, info.value.code, info.value.details) == ("invalid", "failed", {"errors": ["e1"]})


def test_call_rejects_a_reply_without_ok(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        server = threading.Thread(target=serve_once, args=(listener, lambda rid: [{"id": rid, "result": {}}]))
        server.start()
        with pytest.raises(proto.ProtocolError, match="reply has no 'ok' field"):
            proto.call(path, "status")
        server.join()


def test_a_frame_fed_one_byte_at_a_time_comes_out_whole_once():
    message = {"id": "r1", "command": "trigger", "args": {"job": "dåily ✓"}}
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    buffer = proto.FrameBuffer()
    assert [buffer.feed(data[i:i + 1]) for i in range(len(data) - 1)] == [None] * (len(data) - 1)
    assert buffer.feed(data[-1:]) == message


@pytest.mark.parametrize("sent, error, message", [
    (b"", proto.ConnectionClosed, "connection closed by peer"),
    (b"\x00\x00", proto.ProtocolError, "truncated frame: header has 2 of 4 bytes"),
    (struct.pack(">I", 40) + b'{"id"', proto.ProtocolError, "truncated frame: body has 5 of 40 bytes"),
])
def test_a_buffer_closed_early_says_what_was_missing(sent, error, message):
    buffer = proto.FrameBuffer()
    assert buffer.feed(sent) is None
    closed = buffer.closed_early()
    assert type(closed) is error and str(closed) == message


def test_a_buffer_refuses_an_oversized_frame_from_its_header():
    with pytest.raises(proto.ProtocolError, match="frame too large: 101 bytes, the limit is 100"):
        proto.FrameBuffer(limit=100).feed(struct.pack(">I", 101))


@pytest.mark.parametrize("body, message", [
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "frame is not usable JSON: nested too deeply"),
    (b'{"a": ' + b"7" * 5000 + b"}", "frame is not usable JSON: an integer with too many digits"),
])
def test_json_that_python_cannot_hold_is_a_protocol_error(pair, body, message):
    a, b = pair
    raw(a, body)
    with pytest.raises(proto.ProtocolError, match=f"^{message}$"):
        proto.recv_frame(b)
