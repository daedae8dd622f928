"""Stream mode of the control protocol: an archive's bytes sent after the JSON reply to `fetch` (the frame
layout is described in protocol.py). Standard library only: backupctl reads streams with it."""
from __future__ import annotations

import hashlib
import socket
from typing import Callable, Iterable, Iterator

from . import protocol as proto

MAX_DATA_FRAME = 1 << 20        # bytes of archive data in one frame
MAX_TRAILER = 64 << 10          # the JSON frame after the end marker is small
SEND_BUFFER = 2 << 20           # a socket send buffer holding two frames: the reader seldom waits on the sender


class StreamFailed(proto.RemoteError):
    """The daemon ended the stream with an error frame (the destination failed while sending)."""


def _data_header(size: int) -> bytes:
    return size.to_bytes(proto.HEADER_SIZE, "big")


def send_stream(sock, chunks: Iterable[bytes], size_limit: int,
                describe: Callable[[Exception], str | None] = lambda exc: None) -> dict:
    """Send `chunks` as data frames, then the end marker and the trailer (sha256 and size of what was sent);
    returns the trailer. A chunk source that fails, or gives more than `size_limit` bytes, ends the stream
    with an error trailer: describe(exc) is its message, or None for an unexpected error, which is then
    re-raised after the error trailer went out. Socket errors propagate (the client is gone)."""
    digest, sent = hashlib.sha256(), 0
    iterator = iter(chunks)
    _enlarge_send_buffer(sock)
    unexpected = None
    while True:
        try:
            chunk = next(iterator, None)
            if chunk is not None and sent + len(chunk) > size_limit:
                raise OverflowError(f"the destination gave more than the recorded {size_limit} bytes")
        except Exception as exc:   # the destination's failure, reported to the client, never a traceback
            message = str(exc) if isinstance(exc, OverflowError) else describe(exc)
            unexpected = None if message is not None else exc
            trailer = {"error": {"message": message or "internal error while sending the archive",
                                 "code": "failed" if message else "internal"}}
            break
        if chunk is None:
            trailer = {"end": {"sha256": digest.hexdigest(), "size": sent}}
            break
        view = memoryview(chunk)
        for start in range(0, len(view), MAX_DATA_FRAME):
            piece = view[start:start + MAX_DATA_FRAME]
            sock.sendall(_data_header(len(piece)))
            sock.sendall(piece)
        digest.update(view)
        sent += len(view)
    sock.sendall(_data_header(0))
    proto.send_frame(sock, trailer)
    if unexpected is not None:
        raise unexpected
    return trailer


class StreamReader:
    """The data frames that follow a `fetch` reply, as an iterable of bytes. Checks every frame's size
    (at most MAX_DATA_FRAME, at most `size` bytes in all: what the reply announced) and, at the end, that
    the trailer's sha256 and size are those of the bytes received. Raises ProtocolError, or StreamFailed
    for the daemon's error trailer. `conn` has recv() (a socket, or one with deadlines)."""

    def __init__(self, conn, size: int) -> None:
        self.conn, self.size = conn, size
        self.received = 0
        self.sha = hashlib.sha256()
        self.trailer: dict | None = None

    def __iter__(self) -> Iterator[bytes]:
        while True:
            length = int.from_bytes(_recv_exactly(self.conn, proto.HEADER_SIZE, "a data frame header"), "big")
            if length == 0:
                self._finish()
                return
            if length > MAX_DATA_FRAME:
                raise proto.ProtocolError(f"data frame of {length} bytes, the limit is {MAX_DATA_FRAME}")
            if self.received + length > self.size:
                raise proto.ProtocolError(f"the stream holds more than the {self.size} bytes announced")
            data = _recv_data(self.conn, length)
            self.received += length
            self.sha.update(data)
            yield data

    def _finish(self) -> None:
        frame = proto.recv_frame(self.conn, MAX_TRAILER)
        if "error" in frame:
            error = frame["error"] if isinstance(frame["error"], dict) else {}
            message = error.get("message")
            raise StreamFailed(message if isinstance(message, str) else "the daemon ended the stream with an error",
                               str(error.get("code") or "failed"))
        end = frame.get("end")
        if not isinstance(end, dict) or not isinstance(end.get("sha256"), str) or type(end.get("size")) is not int:
            raise proto.ProtocolError("the stream's trailer has neither an 'end' with sha256 and size nor an 'error'")
        if end["size"] != self.received or end["sha256"] != self.sha.hexdigest():
            raise proto.ProtocolError(f"the stream was damaged in transit: {self.received} bytes received "
                                      f"(sha256 {self.sha.hexdigest()[:16]}...), the daemon sent {end['size']} "
                                      f"(sha256 {end['sha256'][:16]!r}...)")
        self.trailer = end


def _enlarge_send_buffer(sock) -> None:
    """Best effort: the kernel caps it at net.core.wmem_max."""
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < SEND_BUFFER:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    except (AttributeError, OSError):
        pass


def _recv_data(conn, size: int) -> bytes | bytearray:
    """A data frame's `size` bytes, received in place into one buffer when `conn` has recv_into()."""
    if not hasattr(conn, "recv_into"):
        return _recv_exactly(conn, size, "a data frame")
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        count = conn.recv_into(view[got:], size - got)
        if not count:
            raise proto.ProtocolError(f"stream cut short: a data frame has {got} of {size} bytes")
        got += count
    return data


def _recv_exactly(conn, size: int, what: str) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = conn.recv(min(remaining, MAX_DATA_FRAME))
        if not chunk:
            raise proto.ProtocolError(f"stream cut short: {what} has {size - remaining} of {size} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
