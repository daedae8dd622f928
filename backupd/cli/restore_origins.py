"""Where restore and verify get an archive's bytes, three ways; each hands `consume(info, chunks)` the
backup's description and its stored bytes while they arrive, and returns what consume returned:

- the daemon (the default): `fetch` over the control socket, the bytes in the protocol's stream mode;
- `--config FILE`: no daemon; the configuration, history and credentials read directly (as root), the
  archive fetched from the destination by backupctl itself;
- `--archive FILE`: no configuration or daemon at all (a sidecar FILE.meta.json, when a local destination's
  is copied along, gives the recorded sha256).

`info`: name, job, run_id, sha256 (as recorded, "" when unknown), size (or None), destination."""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from backupd.client.call import Request
from backupd.daemon import protocol as proto
from backupd.daemon.stream import StreamReader

Consume = Callable[[dict, object], object]
FILE_BLOCK = 1 << 20


class OriginError(Exception):
    """The backup cannot be had this way; the message is one line (exit 1)."""


class _Rolling:
    """recv() with a fresh deadline of `timeout` s for each piece: a stream may take long, a silence may not."""

    def __init__(self, conn, timeout: float) -> None:
        self.conn, self.timeout = conn, timeout

    def recv(self, size: int) -> bytes:
        self.conn.deadline = time.monotonic() + self.timeout
        return self.conn.recv(size)

    def recv_into(self, buffer, size: int) -> int:
        self.conn.deadline = time.monotonic() + self.timeout
        self.conn.sock.settimeout(self.timeout)
        return self.conn.sock.recv_into(buffer, size)


class FetchRequest(Request):
    """`fetch` through the daemon: once it answered, consume() reads the stream on the same connection."""

    def __init__(self, path: str, args: dict, timeout: float, consume: Consume) -> None:
        super().__init__(path, "fetch", args, timeout)
        self.consume = consume

    def _read(self, conn):
        info = super()._read(conn)
        if not (isinstance(info.get("name"), str) and isinstance(info.get("sha256"), str)
                and type(info.get("size")) is int and info["size"] >= 0):
            raise proto.ProtocolError("the fetch reply lacks the archive's name, sha256 or size")
        return self.consume(info, StreamReader(_Rolling(conn, self.timeout), info["size"]))


def via_daemon(options: dict, socket_path: str, consume: Consume):
    args = {"backup": options["backup"], "destination": options.get("destination")}
    return FetchRequest(socket_path, args, options["timeout"], consume).send()


def via_config(options: dict, consume: Consume):
    from backupd.config import ConfigError, load
    from backupd.jobs.locate import LocateError, listings, locate, open_fetch
    try:
        config = load(options["config"])
    except ConfigError as exc:
        raise OriginError("; ".join(f"{exc.path}: {error}" for error in exc.errors[:3])) from None
    os.environ.setdefault("CREDENTIALS_DIRECTORY", str(config.path.parent))    # LoadCredential='s files
    state_dir = config.daemon.state_dir
    try:
        found = locate(options["backup"], config, trail_records(state_dir),
                       lambda: listings(config, state_dir, options.get("destination")), options.get("destination"))
        fetched = open_fetch(found, config, state_dir)
    except LocateError as exc:
        raise OriginError(str(exc)) from None
    try:
        return consume({**found.to_dict(), "destination": fetched.name}, fetched.chunks)
    finally:
        fetched.close()


def trail_records(state_dir: Path) -> list | None:
    """The runs in the daemon's history, newest first, opened read-only (SQLite may add its -wal and -shm
    files, owned as the database is); None without a readable history: the destinations' listings are asked."""
    from backupd.jobs.result import RunRecord
    path = Path(state_dir) / "history.db"
    if not path.is_file():
        return None
    wal = path.with_name(path.name + "-wal")
    settled = not wal.exists() or wal.stat().st_size == 0
    for mode in ("ro", "ro&immutable=1") if settled else ("ro",):   # immutable only when no write is pending
        try:
            db = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True)
            try:
                rows = db.execute("SELECT record FROM runs ORDER BY started DESC, rowid DESC").fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            continue
        return [RunRecord.from_dict(json.loads(row[0])) for row in rows]
    return None


def via_file(options: dict, consume: Consume):
    path = Path(options["archive"])
    try:
        source = open(path, "rb")
    except OSError as exc:
        raise OriginError(f"cannot read {path}: {exc.strerror}") from None
    with source:
        info = {"name": path.name, "job": "", "run_id": "", "sha256": _sidecar_sha256(path),
                "size": os.fstat(source.fileno()).st_size, "destination": str(path)}
        return consume(info, iter(lambda: source.read(FILE_BLOCK), b""))


def _sidecar_sha256(path: Path) -> str:
    try:
        meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
    except (OSError, ValueError):
        return ""
    sha = meta.get("sha256") if isinstance(meta, dict) else None
    return sha if isinstance(sha, str) else ""
