"""What backupctl talks to in its tests: the real ControlServer on canned handlers, and raw sockets that misbehave."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from contextlib import contextmanager

from backupd.daemon import protocol as proto
from backupd.daemon.control import ControlServer


def _short_socket_path(prefix: str) -> tuple[str, str]:
    """(a fresh folder, a socket path in it) short enough for AF_UNIX wherever the tests run."""
    directory = tempfile.mkdtemp(prefix=prefix)
    return directory, os.path.join(directory, "backupd.sock")


@contextmanager
def control_server(handlers: dict, **options):
    """A ControlServer serving `handlers` to everyone; yields its socket path."""
    directory, path = _short_socket_path("ctl-")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    server = ControlServer(listener, handlers, lambda peer: True, **options)
    server.start()
    try:
        yield path
    finally:
        server.stop(timeout=2)
        shutil.rmtree(directory, ignore_errors=True)


class RawPeer:
    """A listening Unix socket; with `answer`, connection number i is handed to answer(conn, i) in a thread.

    Without `answer` nothing is ever accepted: a client connects (while the backlog has room) and sends, and
    no answer ever comes.
    """

    def __init__(self, answer=None, backlog: int = 16):
        self.dir, self.path = _short_socket_path("peer-")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(backlog)
        self.answer, self.accepted = answer, 0
        self.held: list[socket.socket] = []    # connections kept open (accepted, or filling the backlog)
        if answer is not None:
            threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1      # counted before it is answered: a client that got its answer sees the count
            threading.Thread(target=self._answer, args=(conn, self.accepted - 1), daemon=True).start()

    def _answer(self, conn: socket.socket, index: int) -> None:
        try:
            self.answer(conn, index)
        except OSError:
            pass   # the client gave up first, or the peer is closing

    def fill_backlog(self) -> int:
        """Connect until the listen queue is full (connect fails with EAGAIN); return how many got in."""
        for count in range(10_000):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(self.path)
            except BlockingIOError:
                filler.close()
                return count
            self.held.append(filler)
        raise AssertionError("the listen queue never filled up")

    def __enter__(self) -> "RawPeer":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes the accept loop
        except OSError:
            pass
        self.listener.close()
        for conn in self.held:
            conn.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_request(conn: socket.socket) -> tuple[str, str, dict]:
    return proto.parse_request(proto.recv_frame(conn))


def busy(conn: socket.socket) -> None:
    """Refuse as the daemon does when every slot is taken: the busy reply, before reading the request."""
    with conn:
        proto.send_frame(conn, proto.error_reply(None, "daemon busy, try again", "busy"))
