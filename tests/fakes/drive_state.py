"""What the loopback Drive holds: files, folders, shared drives, upload sessions, and the `q` language."""
from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

FOLDER = "application/vnd.google-apps.folder"
UNIT = 256 * 1024          # resumable chunks must be multiples of this, except the last

_STR = r"'((?:[^'\\]|\\.)*)'"
_TERMS = [
    ("parent", re.compile(_STR + r"\s+in\s+parents")),
    ("field", re.compile(r"(name|mimeType)\s*(=|!=)\s*" + _STR)),
    ("trashed", re.compile(r"trashed\s*=\s*(true|false)")),
    ("app", re.compile(r"appProperties\s+has\s*\{\s*key\s*=\s*" + _STR + r"\s+and\s+value\s*=\s*"
                       + _STR + r"\s*\}")),
]
_AND = re.compile(r"\s+and\s+")


class QueryError(ValueError):
    """A `q` expression this server does not understand (Drive answers 400 invalid)."""


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_query(q: str) -> list:
    """Parse `q` into a list of predicates on DriveFile; unknown forms raise QueryError."""
    predicates, pos, q = [], 0, q.strip()
    while pos < len(q):
        for kind, pattern in _TERMS:
            match = pattern.match(q, pos)
            if match:
                predicates.append(_predicate(kind, match.groups()))
                pos = match.end()
                break
        else:
            raise QueryError(f"Invalid Value at: {q[pos:pos + 40]!r}")
        joint = _AND.match(q, pos)
        if joint:
            pos = joint.end()
        elif pos < len(q):
            raise QueryError(f"expected 'and' at: {q[pos:pos + 40]!r}")
    return predicates


def _predicate(kind: str, groups: tuple):
    if kind == "parent":
        parent = _unescape(groups[0])
        return lambda f: parent in f.parents
    if kind == "field":
        name, op, value = groups[0], groups[1], _unescape(groups[2])
        return lambda f: (getattr(f, name) == value) == (op == "=")
    if kind == "trashed":
        wanted = groups[0] == "true"
        return lambda f: f.trashed == wanted
    key, value = _unescape(groups[0]), _unescape(groups[1])
    return lambda f: f.appProperties.get(key) == value


@dataclass
class DriveFile:
    id: str
    name: str
    mimeType: str
    parents: list
    appProperties: dict
    createdTime: str
    drive_id: str = ""
    trashed: bool = False
    content: bytearray | None = None
    md5: str = ""
    sha256: str = ""

    def resource(self, base_url: str) -> dict:
        """The Drive v3 file resource (every field backupd may ask for)."""
        data = {"kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mimeType,
                "parents": list(self.parents), "appProperties": dict(self.appProperties),
                "createdTime": self.createdTime, "trashed": self.trashed,
                "webViewLink": f"{base_url}file/d/{self.id}/view"}
        if self.drive_id:
            data["driveId"] = self.drive_id
        if self.content is not None:
            data.update(size=str(len(self.content)), md5Checksum=self.md5, sha256Checksum=self.sha256)
        return data


@dataclass
class Session:
    """One resumable upload session: metadata now, bytes as chunks arrive."""

    id: str
    metadata: dict
    total: int | None
    data: bytearray = field(default_factory=bytearray)
    md5: "hashlib._Hash" = field(default_factory=hashlib.md5)
    sha256: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    bytes_received: int = 0       # every body byte sent to this session, accepted or not
    file_id: str = ""
    expired: bool = False

    def mark(self) -> tuple:
        return len(self.data), self.md5.copy(), self.sha256.copy()

    def rollback(self, mark: tuple) -> None:
        """Forget what arrived since mark() (a chunk cut off mid-way)."""
        del self.data[mark[0]:]
        self.md5, self.sha256 = mark[1], mark[2]

    def append(self, block: bytes) -> None:
        self.data += block
        self.md5.update(block)
        self.sha256.update(block)


class DriveState:
    """Thread-safe store behind the loopback server."""

    def __init__(self):
        self.lock = threading.RLock()
        self.files: dict[str, DriveFile] = {}
        self.shared_drives: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self.quota_limit: int | None = None   # about.get's storageQuota.limit; None: unlimited (no limit field)
        self._clock = itertools.count()

    def new_id(self) -> str:
        return secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")

    def _now(self) -> str:
        # strictly increasing timestamps so "newest first" is well defined even within one second
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{next(self._clock) % 1000:03d}Z"

    def parent_drive(self, parents: list) -> str | None:
        """The shared drive id the parents live in ('' for My Drive); None if a parent is missing."""
        parent = parents[0] if parents else "root"
        if parent == "root":
            return ""
        if parent in self.shared_drives:
            return parent
        folder = self.files.get(parent)
        if folder is None or folder.mimeType != FOLDER or folder.trashed:
            return None
        return folder.drive_id

    def create(self, metadata: dict, content: bytes | bytearray | None = None) -> DriveFile:
        parents = list(metadata.get("parents") or ["root"])
        with self.lock:
            drive_id = self.parent_drive(parents)
            if drive_id is None:
                raise KeyError(parents[0])
            entry = DriveFile(self.new_id(), metadata.get("name", "Untitled"),
                              metadata.get("mimeType", "application/octet-stream"), parents,
                              dict(metadata.get("appProperties") or {}), self._now(), drive_id)
            if entry.mimeType != FOLDER:
                entry.content = bytearray(content or b"")
                entry.md5 = hashlib.md5(entry.content).hexdigest()
                entry.sha256 = hashlib.sha256(entry.content).hexdigest()
            self.files[entry.id] = entry
            return entry

    def finish(self, session: Session) -> DriveFile:
        """Turn a complete session into a file (without copying its bytes)."""
        with self.lock:
            entry = self.create(session.metadata)
            entry.content, entry.md5, entry.sha256 = (session.data, session.md5.hexdigest(),
                                                      session.sha256.hexdigest())
            session.file_id = entry.id
            return entry

    def query(self, q: str, *, all_drives: bool, drive_id: str = "") -> list[DriveFile]:
        predicates = parse_query(q) if q else []
        with self.lock:
            found = [f for f in self.files.values() if all(p(f) for p in predicates)
                     and (not f.drive_id or all_drives) and (not drive_id or f.drive_id == drive_id)]
        return sorted(found, key=lambda f: (f.createdTime, f.name))

    def storage_quota(self) -> dict:
        """about.get's storageQuota: every My Drive file's bytes count, the trashed ones too (as on Drive)."""
        with self.lock:
            mine = [f for f in self.files.values() if not f.drive_id and f.content is not None]
            usage, trash = sum(len(f.content) for f in mine), sum(len(f.content) for f in mine if f.trashed)
        quota = {"usage": str(usage), "usageInDrive": str(usage), "usageInDriveTrash": str(trash)}
        return quota if self.quota_limit is None else {"limit": str(self.quota_limit), **quota}

    def corrupt(self, entry: DriveFile) -> None:
        """Flip one stored byte (as a broken transfer would) and recompute Drive's checksums."""
        with self.lock:
            if entry.content:
                entry.content[len(entry.content) // 2] ^= 0xFF
            entry.md5 = hashlib.md5(entry.content or b"").hexdigest()
            entry.sha256 = hashlib.sha256(entry.content or b"").hexdigest()
