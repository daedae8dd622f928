"""Control socket wire format, shared by the daemon and backupctl (stdlib only: backupctl must start fast).

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON holding one object.
  request      {"id": str, "command": str, "args": {...}}
  event        {"id": str, "event": {...}}                      zero or more, before the final reply
  final reply  {"id": str, "ok": true, "result": {...}}
               {"id": str, "ok": false, "error": {"message": str, "code": str, "details": {...}}}

Stream mode (daemon/stream.py), only after an ok reply to `fetch`, whose result announces the archive
({"stream": true, "name", "size", "sha256", ...}: size and sha256 as recorded): binary data frames follow,
each a 4-byte big-endian length of 1 to 1 MiB and that many bytes of the archive, in order; then a
zero-length frame (the end marker); then one ordinary JSON frame of at most 64 KiB, either
  {"end": {"sha256": hex of every data byte sent, "size": their count}}
  {"error": {"message": str, "code": str}}          the destination failed midway: discard what came
The daemon never sends more than the announced size; the reader refuses a data frame over 1 MiB, more
bytes than announced, or a trailer whose sha256 and size are not those of the bytes it received. Whether
the archive is the one recorded (its sha256 against the record's) is checked by the reader's caller.
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
MAX_DEPTH = 32          # nesting a request may have: requests are flat ({"args": {"job": ...}})
BUSY = "busy"           # the error code of a request turned away unread or unserved: nothing was done, ask again


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


def _truncated(what: str, got: int, size: int) -> ProtocolError:
    if what == "header" and got == 0:
        return ConnectionClosed("connection closed by peer")
    return ProtocolError(f"truncated frame: {what} has {got} of {size} bytes")


def _frame_size(header: bytes, limit: int) -> int:
    size = int.from_bytes(header, "big")
    if size > limit:
        raise ProtocolError(f"frame too large: {size} bytes, the limit is {limit}")
    return size


def _recv_exactly(sock, size: int, what: str) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise _truncated(what, size - remaining, size)
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def decode_frame(body: bytes) -> dict:
    """The JSON object a frame's body holds; ProtocolError, with a one-line message, for anything else."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"frame is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"frame is not JSON: {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        raise ProtocolError("frame is not usable JSON: nested too deeply") from None
    except ValueError:   # the one other ValueError json raises: an integer past sys.get_int_max_str_digits()
        raise ProtocolError("frame is not usable JSON: an integer with too many digits") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame is a JSON {type(obj).__name__}, expected an object")
    return obj


def recv_frame(sock, limit: int = MAX_REQUEST) -> dict:
    """Read one frame and return its JSON object; raise ProtocolError if it is malformed or over `limit` bytes."""
    size = _frame_size(_recv_exactly(sock, HEADER_SIZE, "header"), limit)
    return decode_frame(_recv_exactly(sock, size, "body"))


class FrameBuffer:
    """One frame gathered from the pieces a non-blocking socket delivers (the server reads many at once)."""

    def __init__(self, limit: int = MAX_REQUEST) -> None:
        self.limit = limit
        self._data = bytearray()
        self._size: int | None = None

    def feed(self, data: bytes) -> dict | None:
        """Add received bytes; the frame's object once it is complete, else None. Raises ProtocolError."""
        self._data += data
        if self._size is None and len(self._data) >= HEADER_SIZE:
            self._size = _frame_size(bytes(self._data[:HEADER_SIZE]), self.limit)
        if self._size is None or len(self._data) < HEADER_SIZE + self._size:
            return None
        return decode_frame(bytes(self._data[HEADER_SIZE:HEADER_SIZE + self._size]))

    def closed_early(self) -> ProtocolError:
        """What the peer's closing before the frame was complete means (ConnectionClosed if it sent nothing)."""
        if self._size is None:
            return _truncated("header", len(self._data), HEADER_SIZE)
        return _truncated("body", len(self._data) - HEADER_SIZE, self._size)


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
    check_values(obj)
    return request_id, command, args


def check_values(obj: dict) -> None:
    """Refuse what no reply or log line could carry: nesting past MAX_DEPTH, strings that are not Unicode."""
    stack = [((), obj)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            raise ProtocolError(f"request is nested more than {MAX_DEPTH} deep at {_path_text(path)}")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path + (key,))
                stack.append((path + (key,), item))
        elif isinstance(value, list):
            stack.extend((path + (index,), item) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, path: tuple) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"request holds a string that is not valid Unicode (a lone surrogate) at "
                            f"{_path_text(path)}") from None


def _path_text(path: tuple) -> str:
    """Where a value sits, as 'args.job[0]', printable whatever the keys hold, cut at 80 characters."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".") or "top level"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return repr(text if len(text) <= 80 else text[:77] + "...")


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
