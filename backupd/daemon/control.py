"""The control socket server: framed JSON requests, peer credentials, a command table of handlers.

One thread (the loop) accepts connections and reads every request as it arrives, without blocking on any
client: a connection that is still sending holds a buffer, not a thread. A request must arrive whole within
`read_timeout` seconds of the connection; when `max_pending` connections are sending at once the oldest is
closed. A complete request runs in a thread of its own, at most `max_connections` at a time; past that the
client is answered `busy` (nothing was done: ask again).
"""
from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
from typing import Callable

from backupd.daemon import protocol as proto

from .commands import (ClientGone, CommandError, Emit, Handler, check_arg_types, check_args, close_stream,
                       stream_after)
from .peers import Authorizer, Peer, peer_of

__all__ = ["Authorizer", "ClientGone", "CommandError", "ControlServer", "Peer", "check_args", "check_arg_types"]
BUSY_MESSAGE = "daemon busy, try again"
EVICTED_MESSAGE = "daemon busy: too many connections were still sending a request, and this was the oldest"
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_BATCH = 64   # connections taken per wake-up of the loop, so reading is not starved by a flood


class _Throttled:
    """A warning repeated under load (a flood of bad or refused requests) logged at most once per `every` s."""

    def __init__(self, log: logging.Logger, every: float = 5.0) -> None:
        self.log, self.every = log, every
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args, **extra) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.every) < self.every:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return
        self._last[kind] = now
        self.log.warning(message, *args, extra={**extra, "kind": kind, "left_out": self._left_out.pop(kind, 0)})


class _Pending:
    """A connection whose request is still arriving."""

    __slots__ = ("conn", "peer", "buffer", "deadline")

    def __init__(self, conn: socket.socket, peer: Peer, deadline: float) -> None:
        self.conn, self.peer, self.deadline = conn, peer, deadline
        self.buffer = proto.FrameBuffer(proto.MAX_REQUEST)


class ControlServer:
    """Serve requests on a listening Unix socket (see the module's docstring); never dies on bad input."""

    def __init__(self, listener: socket.socket, handlers: dict[str, Handler], authorizer: Callable[[Peer], bool],
                 log: logging.Logger | None = None, *, max_connections: int = 64, max_pending: int = 256,
                 read_timeout: float = 10.0, send_timeout: float = 30.0) -> None:
        self.listener = listener
        self.handlers = {"ping": _ping, **handlers}
        self.authorizer = authorizer
        self.log = log or logging.getLogger("backupd.control")
        self.max_connections, self.max_pending = max_connections, max_pending
        self.read_timeout, self.send_timeout = read_timeout, send_timeout
        self.last_loop = time.monotonic()
        self._throttled = _Throttled(self.log)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._conns: dict[threading.Thread, socket.socket] = {}   # requests being served
        self._pending: dict[int, _Pending] = {}                    # fd -> request arriving, oldest first
        self._selector: selectors.BaseSelector | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="control-accept", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the listener (never unlinks its path), wait for requests, then cut them."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)
        self.listener.close()
        deadline = time.monotonic() + timeout
        for thread in self._connection_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
        for conn in self._conns.copy().values():
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve_forever(self) -> None:
        """The loop: accept, read requests, expire slow ones; returns after stop()."""
        if self._thread is None:
            self._thread = threading.current_thread()
        self.listener.setblocking(False)
        with selectors.DefaultSelector() as selector:
            self._selector = selector
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    self._loop_once(selector)
            finally:
                for pending in list(self._pending.values()):
                    self._forget(pending)
                    pending.conn.close()

    def _loop_once(self, selector: selectors.BaseSelector) -> None:
        self.last_loop = time.monotonic()
        oldest = next(iter(self._pending.values()), None)
        timeout = None if oldest is None else max(0.0, oldest.deadline - self.last_loop)
        for key, _ in selector.select(timeout):
            if self._stopping.is_set():
                return
            try:
                if key.fileobj is self.listener:
                    self._accept_some()
                elif isinstance(key.data, _Pending):
                    self._read_some(key.data)
            except Exception:   # a bug here must cost one connection, never the loop
                self.log.exception("control loop error")
                if isinstance(key.data, _Pending):
                    self._close(key.data)
        self._expire()

    def health(self) -> dict:
        """A liveness snapshot for the watchdog."""
        alive = self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()
        return {"accepting": alive, "last_loop_age_s": time.monotonic() - self.last_loop,
                "connections": len(self._conns), "pending": len(self._pending)}

    def ping(self, timeout: float = 2.0) -> bool:
        """Round-trip a request over a fresh connection: True when the loop answers in time."""
        try:
            proto.call(self.listener.getsockname(), "ping", timeout=timeout, connect_timeout=timeout)
        except proto.RemoteError:
            return True  # busy or refused: still a well-formed answer from the loop
        except (OSError, proto.ProtocolError):
            return False
        return True

    def _connection_threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._conns)

    # -- the loop: accept and read ---------------------------------------------------------------------------
    def _accept_some(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.error("control socket accept failed: %s", exc)
                if exc.errno in _OUT_OF_FDS:   # free one, and give the others a moment to finish
                    self._evict_oldest()
                    self._stopping.wait(0.05)
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(False)
            peer = peer_of(conn)
        except OSError:
            conn.close()
            return
        if len(self._pending) >= self.max_pending:
            self._evict_oldest()
        pending = _Pending(conn, peer, time.monotonic() + self.read_timeout)
        self._pending[conn.fileno()] = pending
        self._selector.register(conn, selectors.EVENT_READ, pending)

    def _read_some(self, pending: _Pending) -> None:
        try:
            data = pending.conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(pending)
            return
        try:
            frame = pending.buffer.feed(data) if data else None
            if not data:
                raise pending.buffer.closed_early()
        except proto.ConnectionClosed:
            self._close(pending)
            return
        except proto.ProtocolError as exc:
            self._refuse(pending, None, f"bad request: {exc}", "bad_request")
            return
        if frame is not None:
            self._request_arrived(pending, frame)

    def _request_arrived(self, pending: _Pending, frame: dict) -> None:
        try:
            request_id, command, args = proto.parse_request(frame)
        except proto.ProtocolError as exc:
            self._refuse(pending, _printable_id(frame), f"bad request: {exc}", "bad_request")
            return
        self._forget(pending)
        if not self._slots.acquire(blocking=False):
            self._throttled.warning("busy", "control socket busy: %d requests being served, refusing one",
                                    self.max_connections)
            _reply_and_close(pending.conn, proto.error_reply(request_id, BUSY_MESSAGE, proto.BUSY))
            return
        thread = threading.Thread(target=self._serve_request, name="control-conn", daemon=True,
                                  args=(pending.conn, pending.peer, request_id, command, args))
        with self._lock:
            self._conns[thread] = pending.conn
        try:
            thread.start()
        except RuntimeError:   # no thread to be had: the same as no slot
            with self._lock:
                self._conns.pop(thread, None)
            self._slots.release()
            _reply_and_close(pending.conn, proto.error_reply(request_id, BUSY_MESSAGE, proto.BUSY))

    def _expire(self) -> None:
        """Answer `timeout` to every connection whose request did not arrive whole in time (oldest first)."""
        now = time.monotonic()
        for pending in list(self._pending.values()):
            if pending.deadline > now:
                return
            self._refuse(pending, None, f"no complete request within {self.read_timeout:g}s", "timeout")

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._pending.values()), None)
        if oldest is not None:
            self._refuse(oldest, None, EVICTED_MESSAGE, proto.BUSY)

    def _refuse(self, pending: _Pending, request_id: str | None, message: str, code: str) -> None:
        peer = pending.peer
        self._throttled.warning(code, "bad control request from uid %d: %s", peer.uid, message,
                                peer_uid=peer.uid, peer_pid=peer.pid, command=None)
        self._forget(pending)
        _reply_and_close(pending.conn, proto.error_reply(request_id, message, code))

    def _forget(self, pending: _Pending) -> None:
        """The loop no longer reads this connection (it is answered, closed, or handed to a thread)."""
        if self._pending.pop(pending.conn.fileno(), None) is not None:
            self._selector.unregister(pending.conn)

    def _close(self, pending: _Pending) -> None:
        self._forget(pending)
        pending.conn.close()

    # -- a request's own thread ------------------------------------------------------------------------------
    def _serve_request(self, conn: socket.socket, peer: Peer, request_id: str, command: str, args: dict) -> None:
        reply = None
        try:
            conn.settimeout(self.send_timeout)
            reply = self._dispatch(conn, request_id, command, args, peer)
            self._send_reply(conn, request_id, reply)
            stream_after(reply, conn)
        except (OSError, ClientGone) as exc:
            self.log.debug("control client went away: %s", exc)
        except Exception:
            self.log.exception("control request %r failed", command)
        finally:
            close_stream(reply)
            conn.close()
            with self._lock:
                self._conns.pop(threading.current_thread(), None)
            self._slots.release()

    def _send_reply(self, conn: socket.socket, request_id: str, reply: dict) -> None:
        try:
            proto.send_frame(conn, reply)
        except (TypeError, ValueError, RecursionError):
            self.log.exception("reply to %r is not JSON-serialisable", request_id)
            proto.send_frame(conn, proto.error_reply(request_id, "internal error", "internal"))

    def _dispatch(self, conn: socket.socket, request_id: str, command: str, args: dict, peer: Peer) -> dict:
        extra = {"peer_uid": peer.uid, "peer_pid": peer.pid, "command": command}
        if not self.authorizer(peer):
            self.log.warning("refused %r from uid %d (pid %d): not permitted", command, peer.uid, peer.pid,
                             extra={**extra, "audit": "refused"})
            return proto.error_reply(request_id, "not permitted", "not_permitted")
        handler = self.handlers.get(command)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return proto.error_reply(request_id, f"unknown command {command!r}; known: {known}", "unknown_command")
        self.log.log(logging.DEBUG if command == "ping" else logging.INFO,
                     "control request %r from uid %d", command, peer.uid, extra=extra)

        def emit(event: dict) -> None:
            try:
                proto.send_frame(conn, proto.event_frame(request_id, event))
            except OSError as exc:
                raise ClientGone(f"client of {command!r} went away: {exc}") from None

        try:
            check_arg_types(args)
            result = handler(args, peer, emit)
        except CommandError as exc:
            return proto.error_reply(request_id, exc.message, exc.code, exc.details)
        except ClientGone:
            raise
        except Exception:
            self.log.exception("internal error in control command %r", command, extra=extra)
            return proto.error_reply(request_id, "internal error", "internal")
        if not isinstance(result, dict):
            self.log.error("control command %r returned %s, not a dict", command, type(result).__name__)
            return proto.error_reply(request_id, "internal error", "internal")
        return proto.ok_reply(request_id, result)


def _reply_and_close(conn: socket.socket, reply: dict) -> None:
    """Answer from the loop without waiting on the client: the small reply fits the socket's buffer or is lost."""
    try:
        conn.setblocking(False)
        proto.send_frame(conn, reply)
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


def _printable_id(frame: dict) -> str | None:
    """The request's id, to answer with, if it is a string a reply can carry."""
    request_id = frame.get("id")
    if not isinstance(request_id, str):
        return None
    try:
        request_id.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return request_id


def _ping(args: dict, peer: Peer, emit: Emit) -> dict:
    return {"pong": True, "pid": os.getpid()}
