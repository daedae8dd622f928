"""A loopback Google Drive v3 + OAuth token server for tests (no Google code inside).

    with DriveServer() as drive:
        key = drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account())
        drive.inject("503", on="chunk", nth=3)       # the 3rd chunk PUT gets a 503
        ... DriveDestination(config with endpoint=drive.url) ...
        drive.files, drive.bytes_received, drive.sessions, drive.count("token")

Request categories a fault can target: token, start (resumable POST), chunk, status (`bytes */N`),
multipart, about (about.get: the storage quota, `state.quota_limit`), api (other metadata calls), media
(downloads), finish (an upload completing), any. files.update honours `trashed` (the trash still counts in the
quota's usage).
Downloads honour Range (206 with Content-Range); the `cut` fault on `media` announces the whole range, sends
half of it and drops the connection.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from .drive_handler import DriveHandler
from .drive_state import DriveFile, DriveState, Session
from .oauth import OAuthState

FAULT_KINDS = ("503", "500", "429", "rate-limit", "sa-no-quota", "storage-quota", "401", "expire",
               "expire-410", "drop", "no-range", "slow", "corrupt", "cut", "invalid-grant", "not-found")


@dataclass
class Fault:
    kind: str
    on: str
    nth: int
    times: int
    delay: float
    seen: int = 0
    fired: int = 0


class FaultSchedule:
    """Faults waiting for their request: the nth matching request (and `times`-1 after it) gets one."""

    def __init__(self):
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, category: str) -> Fault | None:
        with self._lock:
            chosen = None
            for fault in self._faults:
                if fault.on in (category, "any") and fault.fired < fault.times:
                    fault.seen += 1
                    if fault.seen >= fault.nth and chosen is None:
                        fault.fired += 1
                        chosen = fault
            return chosen

    @property
    def fired(self) -> int:
        with self._lock:
            return sum(f.fired for f in self._faults)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class DriveServer:
    def __init__(self, port: int = 0):
        self.state = DriveState()
        self.oauth = OAuthState()
        self.faults = FaultSchedule()
        self.requests: Counter = Counter()
        self._connections: set = set()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), DriveHandler)
        self._server.drive = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.oauth.token_uri = self.url + "token"
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> "DriveServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-drive",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (a client sees the server as down)."""
        if self._thread:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
        with self._lock:
            for sock in list(self._connections):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> "DriveServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def track(self, sock, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(sock)

    # test API ------------------------------------------------------------------------------------
    @property
    def token_uri(self) -> str:
        return self.oauth.token_uri

    def inject(self, kind: str, on: str = "chunk", nth: int = 1, times: int = 1,
               delay: float = 0.0) -> None:
        """Schedule a fault: the nth request of category `on` from now (and times-1 more) gets it."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        self.faults.add(Fault(kind, on, nth, times, delay))

    @property
    def files(self) -> dict[str, DriveFile]:
        with self.state.lock:
            return dict(self.state.files)

    @property
    def sessions(self) -> dict[str, Session]:
        with self.state.lock:
            return dict(self.state.sessions)

    @property
    def bytes_received(self) -> int:
        """Every upload body byte received (chunks and multipart), accepted or not."""
        with self.state.lock:
            return sum(s.bytes_received for s in self.state.sessions.values()) + self.requests["bytes"]

    def count(self, category: str) -> int:
        return self.requests[category]

    def content(self, file_id: str) -> bytes:
        return bytes(self.state.files[file_id].content)

    def add_shared_drive(self, name: str = "Backups") -> str:
        drive_id = "0A" + self.state.new_id()[:17]
        self.state.shared_drives[drive_id] = name
        return drive_id

    def put_file(self, name: str, content: bytes, parents: list | None = None,
                 app_properties: dict | None = None) -> str:
        """Place a file directly (a foreign file, or one uploaded earlier)."""
        meta = {"name": name, "parents": parents or ["root"], "appProperties": app_properties or {}}
        return self.state.create(meta, content).id

    def folder_id(self, path: str, parent: str = "root") -> str | None:
        """The id of folder path 'a/b' under parent, or None."""
        for part in path.strip("/").split("/"):
            match = [f for f in self.state.files.values() if f.name == part and parent in f.parents
                     and f.mimeType == "application/vnd.google-apps.folder"]
            if not match:
                return None
            parent = match[0].id
        return parent

    def new_session(self, metadata: dict, total: int | None = None) -> str:
        """Open an upload session directly; PUT the bytes to the returned URL (e.g. `curl -T`)."""
        session = Session(self.state.new_id(), metadata, total)
        with self.state.lock:
            self.state.sessions[session.id] = session
        return f"{self.url}upload/drive/v3/files?uploadType=resumable&upload_id={session.id}"

    @staticmethod
    def write_credentials(path: Path, info: dict) -> Path:
        """Write a credentials dict as a 0600 JSON file."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(info, out)
        return path

