"""Stream mode of the control protocol over real socket pairs: round trips, the reader's caps and checks,
and fuzzed input (whatever arrives, the reader yields at most the announced bytes and ends with data or a
ProtocolError / StreamFailed, never another exception and never a hang)."""
import hashlib
import json
import socket
import struct
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backupd.daemon import protocol as proto
from backupd.daemon.stream import MAX_DATA_FRAME, StreamFailed, StreamReader, send_stream
from tests.daemon.test_protocol import pair  # noqa: F401  (the socket pair fixture)




def sent_in_thread(sock, target, *args):
    """Run a sender in a thread (a socket pair's buffer is smaller than a stream); returns the thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def read_all(sock, size: int) -> bytes:
    return b"".join(StreamReader(sock, size))


def test_round_trip_splits_large_chunks_and_ends_with_the_trailer(pair):
    a, b = pair
    chunks = [b"x" * 10, b"", b"y" * (MAX_DATA_FRAME * 2 + 5), b"z"]
    data = b"".join(chunks)
    results = []
    sender = sent_in_thread(a, lambda: results.append(send_stream(a, chunks, len(data))))
    reader = StreamReader(b, len(data))
    pieces = list(reader)
    sender.join(5)
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) == MAX_DATA_FRAME
    assert reader.trailer == results[0]["end"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_a_failing_source_ends_the_stream_with_its_message(pair):
    a, b = pair

    def chunks():
        yield b"first"
        raise ValueError("Drive unreachable for 600s")

    sender = sent_in_thread(a, send_stream, a, chunks(), 100, lambda exc: str(exc))
    reader = StreamReader(b, 100)
    with pytest.raises(StreamFailed, match="Drive unreachable for 600s"):
        list(reader)
    sender.join(5)
    assert reader.received == 5


def test_an_unexpected_error_is_reported_as_internal_and_raised_in_the_daemon(pair):
    a, b = pair
    errors = []

    def send():
        try:
            send_stream(a, iter([b"ab", object()]), 100)   # a chunk that is not bytes: a bug
        except TypeError as exc:
            errors.append(exc)

    sender = sent_in_thread(a, send)
    with pytest.raises(StreamFailed) as caught:
        list(StreamReader(b, 100))
    sender.join(5)
    assert caught.value.code == "internal" and "internal error" in caught.value.message
    assert errors


def test_the_daemon_never_sends_more_than_the_recorded_size(pair):
    a, b = pair
    sender = sent_in_thread(a, send_stream, a, [b"12345", b"678"], 6)
    with pytest.raises(StreamFailed, match="more than the recorded 6 bytes"):
        list(StreamReader(b, 100))
    sender.join(5)


def frames(*parts) -> bytes:
    """Raw stream bytes: ints are data frame headers, bytes go as they are, dicts as JSON frames."""
    out = b""
    for part in parts:
        if isinstance(part, int):
            out += struct.pack(">I", part)
        elif isinstance(part, dict):
            body = json.dumps(part).encode()
            out += struct.pack(">I", len(body)) + body
        else:
            out += part
    return out


def end(data: bytes) -> dict:
    return {"end": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}}


@pytest.mark.parametrize("raw, size, message", [
    (frames(MAX_DATA_FRAME + 1), 1 << 30, "data frame of 1048577 bytes, the limit is 1048576"),
    (frames(4, b"abcd", 4, b"efgh"), 6, "more than the 6 bytes announced"),
    (frames(4, b"ab"), 10, "stream cut short: a data frame has 2 of 4 bytes"),
    (frames(b"\x00\x00"), 10, "a data frame header has 2 of 4 bytes"),
    (frames(4, b"abcd"), 10, "stream cut short: a data frame header has 0 of 4"),
    (frames(4, b"abcd", 0), 10, "connection closed by peer"),
    (frames(4, b"abcd", 0, end(b"abce")), 10, "damaged in transit"),
    (frames(4, b"abcd", 0, {"end": {"sha256": hashlib.sha256(b"abcd").hexdigest(), "size": 5}}), 10,
     "damaged in transit"),
    (frames(4, b"abcd", 0, {"end": "yes"}), 10, "neither an 'end'"),
    (frames(4, b"abcd", 0, {"end": {"sha256": "x", "size": True}}), 10, "neither an 'end'"),
    (frames(0, struct.pack(">I", 70000)), 10, "frame too large: 70000 bytes"),
    (frames(0, 3, b"[1]"), 10, "frame is a JSON list"),
])
def test_the_reader_refuses_bad_streams(pair, raw, size, message):
    a, b = pair
    a.sendall(raw)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(proto.ProtocolError, match=message):
        read_all(b, size)


def test_an_error_trailer_with_odd_fields_still_gives_one_message(pair):
    a, b = pair
    a.sendall(frames(0, {"error": ["not", "an", "object"]}))
    with pytest.raises(StreamFailed, match="ended the stream with an error"):
        read_all(b, 10)


def test_an_empty_archive_is_a_valid_stream(pair):
    a, b = pair
    a.sendall(frames(0, end(b"")))
    assert read_all(b, 0) == b""


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=300),
                     st.lists(st.one_of(st.integers(0, 40).map(lambda n: struct.pack(">I", n)),
                                        st.binary(max_size=40),
                                        st.just(frames(0, end(b"")))), max_size=12).map(b"".join)),
       size=st.integers(0, 64))
def test_fuzzed_streams_end_in_data_or_a_protocol_error(raw, size):
    a, b = socket.socketpair()
    try:
        b.settimeout(5)
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        reader = StreamReader(b, size)
        received = b""
        try:
            for piece in reader:
                received += piece
        except (proto.ProtocolError, StreamFailed):
            pass
        else:
            assert reader.trailer == end(received)["end"]
        assert len(received) <= size
    finally:
        a.close()
        b.close()


@settings(max_examples=50, deadline=None, database=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=20))
def test_fuzzed_chunks_round_trip(chunks):
    a, b = socket.socketpair()
    try:
        a.settimeout(5)
        b.settimeout(5)
        data = b"".join(chunks)
        sender = sent_in_thread(a, send_stream, a, chunks, len(data))
        assert read_all(b, len(data)) == data
        sender.join(5)
    finally:
        a.close()
        b.close()
