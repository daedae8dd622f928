"""The control socket the daemon binds itself: a listen queue a burst of clients does not fill."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from backupd.daemon.listener import open_listener

BURST = 300   # backupctl processes connecting at the same moment, before the daemon accepts any


@pytest.fixture
def socket_path():
    folder = tempfile.mkdtemp(prefix="lst-")   # short: Unix socket paths are limited to 108 bytes
    yield os.path.join(folder, "ctl.sock")
    shutil.rmtree(folder, ignore_errors=True)


def test_a_burst_of_connections_waits_in_the_queue_instead_of_failing(socket_path, monkeypatch):
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    listener = open_listener(Path(socket_path), "")
    clients = []
    try:
        for _ in range(BURST):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            clients.append(client)
            client.setblocking(False)
            client.connect(socket_path)   # EAGAIN (BlockingIOError) once the queue is full
    finally:
        for client in clients:
            client.close()
        listener.close()
    assert len(clients) == BURST
