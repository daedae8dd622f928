"""Control socket wire format, shared by the daemon and backupctl (stdlib only: backupctl must start fast).

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON holding one object.
  request      {"id": str, "command": str, "args": {...}}
  event        {"id": str, "event": {...}}                      zero or more, before the final reply
  final reply  {"id": str, "ok": true, "result": {...}}
               {"id": str, "ok": false, "error": {"message": str, "code": str, "details": {...}}}
"""
from __future__ import annotations

import _socket  # the C module: `socket` adds enum conversions and selectors that backupctl does not need
import json
import os

MAX_REQUEST = 1 << 20   # 1 MiB: requests are small
MAX_REPLY = 16 << 20    # 16 MiB: a long history or listing
HEADER_SIZE = 4
HISTORY_LIMIT = 20      # runs in a `history` reply when the request names no limit
HISTORY_MAX = 1000      # the most runs one `history` request may ask for


class ProtocolError(Exception):
    """A frame that cannot be read or does not have the expected shape; the message is one line."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection cleanly between frames."""


class RemoteError(Exception):
    """The daemon answered ok: false."""

    def __init__(self, message: str, code: str = "failed", details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}


def send_frame(sock, obj: dict) -> None:
    """Encode one object and send it as a single frame."""
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sock.sendall(len(data).to_bytes(HEADER_SIZE, "big") + data)


def _recv_exactly(sock, size: int, what: str) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            got = size - remaining
            if what == "header" and got == 0:
                raise ConnectionClosed("connection closed by peer")
            raise ProtocolError(f"truncated frame: {what} has {got} of {size} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock, limit: int = MAX_REQUEST) -> dict:
    """Read one frame and return its JSON object; raise ProtocolError if it is malformed or over `limit` bytes."""
    size = int.from_bytes(_recv_exactly(sock, HEADER_SIZE, "header"), "big")
    if size > limit:
        raise ProtocolError(f"frame too large: {size} bytes, the limit is {limit}")
    try:
        obj = json.loads(_recv_exactly(sock, size, "body").decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"frame is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"frame is not JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame is a JSON {type(obj).__name__}, expected an object")
    return obj


def _require(obj: dict, key: str, kinds: tuple, what: str):
    if key not in obj:
        raise ProtocolError(f"{what} has no {key!r} field")
    value = obj[key]
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ProtocolError(f"{what} field {key!r} must be {names}, got {type(value).__name__}")
    return value


def parse_request(obj: dict) -> tuple[str, str, dict]:
    """Check a request's shape and return (id, command, args)."""
    request_id = _require(obj, "id", (str,), "request")
    command = _require(obj, "command", (str,), "request")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(f"request field 'args' must be an object, got {type(args).__name__}")
    return request_id, command, args


def request(request_id: str, command: str, args: dict | None = None) -> dict:
    return {"id": request_id, "command": command, "args": args or {}}


def ok_reply(request_id: str | None, result: dict) -> dict:
    return {"id": request_id, "ok": True, "result": result}


def error_reply(request_id: str | None, message: str, code: str = "failed", details: dict | None = None) -> dict:
    error = {"message": message, "code": code}
    if details:
        error["details"] = details
    return {"id": request_id, "ok": False, "error": error}


def event_frame(request_id: str, event: dict) -> dict:
    return {"id": request_id, "event": event}


def final_result(reply: dict) -> dict:
    """Return the result of a final reply or raise RemoteError / ProtocolError."""
    ok = _require(reply, "ok", (bool,), "reply")
    if ok:
        return _require(reply, "result", (dict,), "reply")
    error = _require(reply, "error", (dict,), "reply")
    message = _require(error, "message", (str,), "reply error")
    details = error.get("details")
    raise RemoteError(message, str(error.get("code") or "failed"), details if isinstance(details, dict) else None)


def call(path, command: str, args: dict | None = None, timeout: float | None = 30.0,
         on_event=None, connect_timeout: float = 5.0) -> dict:
    """Send one request over a fresh connection and return the result; events go to on_event(event)."""
    request_id = os.urandom(6).hex()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        sock.connect(os.fspath(path))
        sock.settimeout(timeout)
        try:
            send_frame(sock, request(request_id, command, args))
        except BrokenPipeError:
            pass  # the server answered and closed early (busy, refused): its reply is still readable
        while True:
            frame = recv_frame(sock, MAX_REPLY)
            if "event" not in frame:
                return final_result(frame)
            if on_event is not None:
                on_event(_require(frame, "event", (dict,), "event frame"))
    finally:
        sock.close()
