"""The control socket server: framed JSON requests, peer credentials, a command table of handlers."""
from __future__ import annotations

import grp
import logging
import os
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

from backupd.daemon import protocol as proto

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; Python does not export it
_CRED = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: frozenset = frozenset()


class CommandError(Exception):
    """A handler's operation failed; the client gets ok: false with this message."""

    def __init__(self, message: str, details: dict | None = None, code: str = "failed") -> None:
        super().__init__(message)
        self.message, self.details, self.code = message, details, code


class ClientGone(Exception):
    """The client closed its connection while a handler was emitting events."""


Emit = Callable[[dict], None]
Handler = Callable[[dict, Peer, Emit], dict]


def _socket_groups(conn: socket.socket) -> frozenset | None:
    try:
        # 1024 is the largest buffer Python's getsockopt accepts: 256 groups; more -> ERANGE -> /proc fallback
        raw = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)
    except OSError:
        return None
    return frozenset(struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))


def _proc_groups(pid: int) -> frozenset:
    """Supplementary groups from /proc/<pid>/status (fallback when SO_PEERGROUPS is unavailable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return frozenset()


def peer_of(conn: socket.socket) -> Peer:
    """The connecting process's pid, uid, gid (SO_PEERCRED) and supplementary groups."""
    pid, uid, gid = _CRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    groups = _socket_groups(conn)
    return Peer(pid, uid, gid, groups if groups is not None else _proc_groups(pid))


class Authorizer:
    """Root, the daemon's own uid and members of control_group (primary or supplementary) are served."""

    def __init__(self, control_group: str | None, own_uid: int | None = None, log: logging.Logger | None = None):
        self.own_uid = os.getuid() if own_uid is None else own_uid
        self.gid = None
        if control_group:
            try:
                self.gid = grp.getgrnam(control_group).gr_gid
            except KeyError:
                (log or logging.getLogger("backupd.control")).warning(
                    "control group %r does not exist: only root and uid %d may use the socket",
                    control_group, self.own_uid)

    def __call__(self, peer: Peer) -> bool:
        if peer.uid in (0, self.own_uid):
            return True
        return self.gid is not None and (peer.gid == self.gid or self.gid in peer.groups)


def check_args(args: dict, spec: dict[str, tuple[tuple, object]]) -> dict:
    """Validate args against {name: (allowed types, default)}; return them with defaults filled in."""
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise CommandError(f"unknown argument {unknown[0]!r}; expected one of {sorted(spec)}", code="bad_args")
    checked = {}
    for name, (kinds, default) in spec.items():
        value = args.get(name, default)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise CommandError(f"argument {name!r} must be {names}, got {type(value).__name__}", code="bad_args")
        checked[name] = value
    return checked


class _BadRequest(Exception):
    def __init__(self, request_id: str | None, message: str, code: str) -> None:
        super().__init__(message)
        self.request_id, self.message, self.code = request_id, message, code


class ControlServer:
    """Serve requests on a listening Unix socket: one thread per connection, bounded; never dies on bad input."""

    def __init__(self, listener: socket.socket, handlers: dict[str, Handler], authorizer: Callable[[Peer], bool],
                 log: logging.Logger | None = None, *, max_connections: int = 16,
                 read_timeout: float = 10.0, send_timeout: float = 30.0) -> None:
        self.listener = listener
        self.handlers = {"ping": _ping, **handlers}
        self.authorizer = authorizer
        self.log = log or logging.getLogger("backupd.control")
        self.max_connections = max_connections
        self.read_timeout, self.send_timeout = read_timeout, send_timeout
        self.last_loop = time.monotonic()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="control-accept", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the listener (never unlinks its path), wait for connections, then cut them."""
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
        """The accept loop; returns after stop()."""
        if self._thread is None:
            self._thread = threading.current_thread()
        self.listener.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                self.last_loop = time.monotonic()
                for _ in selector.select():
                    if not self._stopping.is_set():
                        self._accept_one()

    def health(self) -> dict:
        """A liveness snapshot for the watchdog."""
        alive = self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()
        return {"accepting": alive, "last_loop_age_s": time.monotonic() - self.last_loop,
                "connections": len(self._conns)}

    def ping(self, timeout: float = 2.0) -> bool:
        """Round-trip a request over a fresh connection: True when the accept loop answers in time."""
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

    # -- accept and serve ------------------------------------------------------------------------------------
    def _accept_one(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.log.error("control socket accept failed: %s", exc)
            return
        if not self._slots.acquire(blocking=False):
            self.log.warning("control socket busy: %d connections open, refusing one", self.max_connections)
            self._reply_and_close(conn, proto.error_reply(None, "daemon busy, try again", "busy"))
            return
        thread = threading.Thread(target=self._serve_connection, args=(conn,), name="control-conn", daemon=True)
        with self._lock:
            self._conns[thread] = conn
        thread.start()

    def _reply_and_close(self, conn: socket.socket, reply: dict) -> None:
        try:
            conn.settimeout(1.0)
            proto.send_frame(conn, reply)
        except OSError:
            pass
        finally:
            conn.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            peer = peer_of(conn)
            conn.settimeout(self.read_timeout)
            try:
                request_id, command, args = self._read_request(conn)
            except proto.ConnectionClosed:
                return
            except _BadRequest as bad:
                self.log.warning("bad control request from uid %d: %s", peer.uid, bad.message,
                                 extra={"peer_uid": peer.uid, "peer_pid": peer.pid, "command": None})
                proto.send_frame(conn, proto.error_reply(bad.request_id, bad.message, bad.code))
                return
            conn.settimeout(self.send_timeout)
            self._send_reply(conn, request_id, self._dispatch(conn, request_id, command, args, peer))
        except (OSError, ClientGone) as exc:
            self.log.debug("control client went away: %s", exc)
        finally:
            conn.close()
            with self._lock:
                self._conns.pop(threading.current_thread(), None)
            self._slots.release()

    def _read_request(self, conn: socket.socket) -> tuple[str, str, dict]:
        try:
            frame = proto.recv_frame(conn, proto.MAX_REQUEST)
        except TimeoutError:
            raise _BadRequest(None, f"no complete request within {self.read_timeout:g}s", "timeout") from None
        except proto.ConnectionClosed:
            raise
        except proto.ProtocolError as exc:
            raise _BadRequest(None, f"bad request: {exc}", "bad_request") from None
        try:
            return proto.parse_request(frame)
        except proto.ProtocolError as exc:
            request_id = frame.get("id") if isinstance(frame.get("id"), str) else None
            raise _BadRequest(request_id, f"bad request: {exc}", "bad_request") from None

    def _send_reply(self, conn: socket.socket, request_id: str, reply: dict) -> None:
        try:
            proto.send_frame(conn, reply)
        except (TypeError, ValueError):
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


def _ping(args: dict, peer: Peer, emit: Emit) -> dict:
    return {"pong": True, "pid": os.getpid()}
