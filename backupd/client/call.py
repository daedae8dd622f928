"""One request to the daemon's control socket, as the client and backupctl send it: a busy daemon is asked again,
a silent one given up on (standard library and the protocol only).

A daemon is busy when its listen queue is full (connect fails with EAGAIN) or when it answers `busy` (every
connection slot taken, so the request was not read): either way nothing was done, and the request is sent again
after a short jittered pause, for as long as the caller's timeout allows.
"""
from __future__ import annotations

import _socket  # the C module, as in the protocol: backupctl must start fast
import os
import time

from ..daemon import protocol as proto

DEFAULT_SOCKET = "/run/backupd/backupd.sock"
DEFAULT_TIMEOUT = 120.0      # seconds the daemon may take to answer (a listing may ask Google Drive)
FIRST_PAUSE, LONGEST_PAUSE = 0.02, 0.5   # seconds between attempts at a busy daemon: doubling, then steady
BUSY_CODE = "busy"                        # the error code of the daemon's "every slot is taken" reply


def socket_path(given: str | os.PathLike | None = None) -> str:
    """The control socket: `given`, else $BACKUPD_SOCKET, else DEFAULT_SOCKET."""
    return os.fspath(given or os.environ.get("BACKUPD_SOCKET") or DEFAULT_SOCKET)


class Busy(Exception):
    """The daemon was busy for the whole timeout; the message says how it showed it."""


class NoAnswer(Exception):
    """The daemon did not answer in time, or (`midway`) stopped answering after some of its reply."""

    def __init__(self, message: str, midway: bool = False) -> None:
        super().__init__(message)
        self.midway = midway


class _Refused(Exception):
    """This attempt was turned away unread (full listen queue, busy reply): another may succeed."""


class _Deadline:
    """A connected socket whose receives must all end by `deadline` (time.monotonic())."""

    def __init__(self, sock, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        return self.sock.recv(size)


class Request:
    """One request, sent again while the daemon is busy; the daemon has `timeout` s to answer, retries included.

    With `between_events` (trigger --wait), once the daemon has answered, each further frame has `timeout` s.
    """

    def __init__(self, path: str, command: str, args: dict, timeout: float, on_event=None,
                 between_events: bool = False) -> None:
        self.path, self.frame = os.fspath(path), proto.request(os.urandom(6).hex(), command, args)
        self.timeout, self.on_event, self.between_events = timeout, on_event, between_events

    def send(self) -> dict:
        """The result; raises Busy, NoAnswer, proto.RemoteError, proto.ProtocolError or OSError."""
        deadline = time.monotonic() + self.timeout
        pause, attempts, refused = FIRST_PAUSE, 0, None
        while True:
            attempts += 1
            try:
                return self._attempt(deadline)
            except _Refused as exc:
                refused = exc
            except NoAnswer as exc:
                if refused is None or exc.midway:
                    raise
            remaining = deadline - time.monotonic()   # refused, or the time ran out on the try after a refusal
            if remaining <= 0:
                raise Busy(f"{refused} for {self.timeout:g}s ({attempts} attempts)") from None
            time.sleep(min(pause * _jitter(), remaining))
            pause = min(pause * 2, LONGEST_PAUSE)

    def _attempt(self, deadline: float) -> dict:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                sock.connect(self.path)
            except BlockingIOError:   # EAGAIN: the daemon's listen queue is full
                raise _Refused("its listen queue stayed full") from None
            try:
                proto.send_frame(sock, self.frame)
            except BrokenPipeError:
                pass   # it answered and closed early (busy, refused): the answer is still there to read
            return self._read(_Deadline(sock, deadline))
        finally:
            sock.close()

    def _read(self, conn: _Deadline) -> dict:
        """Events go to on_event until the final reply; a `busy` reply is _Refused, other errors RemoteError."""
        late = NoAnswer(f"did not answer within {self.timeout:g}s")
        while True:
            frame = _next_frame(conn, late)
            if "event" not in frame:
                return _final_result(frame)
            if not isinstance(frame["event"], dict):
                raise proto.ProtocolError(f"an event frame holds a JSON {type(frame['event']).__name__}, "
                                          "not an object")
            if self.between_events:
                conn.deadline = time.monotonic() + self.timeout
                late = NoAnswer(f"stopped answering: nothing for {self.timeout:g}s", midway=True)
            if self.on_event is not None:
                self.on_event(frame["event"])


def _jitter() -> float:
    """A factor from 0.5 to 1.5, so that clients turned away together do not come back together."""
    return 0.5 + int.from_bytes(os.urandom(2), "big") / 65536   # os.urandom: `random` costs start-up time


def _final_result(frame: dict) -> dict:
    try:
        return proto.final_result(frame)
    except proto.RemoteError as exc:
        if exc.code == BUSY_CODE:
            raise _Refused(f"it answered {exc.message!r}") from None
        raise


def _next_frame(conn: _Deadline, late: NoAnswer) -> dict:
    try:
        return proto.recv_frame(conn, proto.MAX_REPLY)
    except TimeoutError:
        raise late from None
    except (ValueError, RecursionError) as exc:   # JSON that json cannot hold: 5,000-digit numbers, deep nesting
        raise proto.ProtocolError(f"the reply is not usable JSON: {type(exc).__name__}") from None
