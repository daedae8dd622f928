"""What a restore of several archives (a full, then its differential) has staged, path by path, kept in a
private on-disk SQLite database (memory stays flat with hundreds of thousands of files), and the staged
state compared with a differential's MANIFEST.json, which describes the complete tree: every path, its
type, size, sha256 or link target; nothing more, nothing less.

Paths are kept as bytes (names need not be UTF-8); a folder's removal removes everything below it."""
from __future__ import annotations

import sqlite3
from typing import Iterable

from .check import MANIFEST_NAME, Record
from .reader import ArchiveError

BATCH = 1000
MAX_SHOWN = 50                  # problems named one by one; the rest are counted
_ENCODING = ("utf-8", "surrogateescape")
_SCHEMA = ("CREATE TABLE {} (path BLOB PRIMARY KEY, kind TEXT, size INTEGER, sha BLOB, target BLOB)"
           " WITHOUT ROWID")
_DIFFER = """SELECT want.path, have.kind, want.kind, have.size, want.size FROM want JOIN have USING (path)
             WHERE have.kind != want.kind OR have.size != want.size OR have.sha != want.sha
                OR have.target != want.target ORDER BY want.path LIMIT ?"""


def key(name: str) -> bytes:
    return name.removeprefix("./").removesuffix("/").encode(*_ENCODING)


def _text(path: bytes) -> str:
    return path.decode(*_ENCODING)


def _row(record: Record) -> tuple:
    """A record as a row; ArchiveError naming the entry if a manifest's is malformed (a damaged archive)."""
    name, kind, size, sha, target = record
    kind = "dir" if kind == "dumpdir" else kind
    try:
        digest = bytes.fromhex(sha) if kind == "file" else b""
        link = target.encode(*_ENCODING) if kind == "symlink" else b""
    except (AttributeError, TypeError, ValueError):
        raise ArchiveError(f"{MANIFEST_NAME}: the entry of {name!r} is malformed") from None
    if kind == "file" and (type(size) is not int or len(digest) != 32):
        raise ArchiveError(f"{MANIFEST_NAME}: the entry of {name!r} is malformed")
    return (key(name), kind, size if kind == "file" else 0, digest, link)


class Ledger:
    """The staged paths (table `have`); compare() loads a manifest's entries (table `want`) and says what
    differs."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None)   # "": private, on disk, removed at close
        self._db.execute("PRAGMA cache_size=-8192")          # KiB: 8 MiB of pages in memory at most
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute(_SCHEMA.format("have"))
        self._db.execute(_SCHEMA.format("want"))
        self._db.execute("BEGIN")
        self._pending: list[tuple] = []

    def close(self) -> None:
        self._db.close()

    def add(self, record: Record) -> None:
        """A member written into the staging folder (it replaces what was staged under its name)."""
        self._pending.append(_row(record))
        if len(self._pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT OR REPLACE INTO have VALUES (?, ?, ?, ?, ?)", self._pending)
            self._pending.clear()

    def remove(self, name: str, is_dir: bool) -> None:
        """A path removed from the staging folder (a folder with everything below it)."""
        self._flush()
        path = key(name)
        self._db.execute("DELETE FROM have WHERE path = ?", (path,))
        if is_dir:
            self._db.execute("DELETE FROM have WHERE path >= ? AND path < ?", (path + b"/", path + b"0"))

    def replace_file(self, name: str, size: int, sha256: str) -> None:
        """A staged file's new content (a delta applied)."""
        self.add((name, "file", size, sha256, ""))

    def count(self, summary) -> None:
        """The staged tree's files, folders, links and file bytes into a RestoreSummary."""
        self._flush()
        counts = {kind: (number, size or 0) for kind, number, size in
                  self._db.execute("SELECT kind, COUNT(*), SUM(size) FROM have GROUP BY kind")}
        summary.files, summary.bytes = counts.get("file", (0, 0))
        summary.directories = counts.get("dir", (0, 0))[0]
        summary.symlinks = counts.get("symlink", (0, 0))[0]

    def expect(self, entries: Iterable[Record]) -> None:
        """The complete state the staged tree must end as (a differential's manifest entries)."""
        db = self._db
        rows: list[tuple] = []
        for record in entries:
            rows.append(_row(record))
            if len(rows) >= BATCH:
                db.executemany("INSERT OR REPLACE INTO want VALUES (?, ?, ?, ?, ?)", rows)
                rows.clear()
        db.executemany("INSERT OR REPLACE INTO want VALUES (?, ?, ?, ?, ?)", rows)

    def compare(self, ignored: set[bytes] = frozenset()) -> list[str]:
        """Problems between the staged paths and the expected ones, one line each; `ignored`: paths left out
        of both sides (refused members)."""
        self._flush()
        db = self._db
        if ignored:
            db.executemany("DELETE FROM want WHERE path = ?", [(path,) for path in ignored])
            db.executemany("DELETE FROM have WHERE path = ?", [(path,) for path in ignored])
        problems = [_differs(*row) for row in db.execute(_DIFFER, (MAX_SHOWN,))]
        problems += self._absent("want", "have", "missing after the restore: {}")
        problems += self._absent("have", "want", "restored but not in the manifest: {}")
        return problems

    def extras(self, ignored: set[bytes] = frozenset()) -> list[tuple[str, bool]]:
        """(path, is a folder) of what is staged but not expected, outermost first; what is below a listed
        extra folder is left out (its removal takes it)."""
        self._flush()
        query = ("SELECT path, kind FROM have WHERE NOT EXISTS (SELECT 1 FROM want WHERE want.path = have.path) "
                 "ORDER BY path")
        found, folders = [], set()
        for path, kind in self._db.execute(query):
            parts = path.split(b"/")
            if path in ignored or any(b"/".join(parts[:depth]) in folders for depth in range(1, len(parts))):
                continue
            found.append((_text(path), kind == "dir"))
            if kind == "dir":
                folders.add(path)
        return found

    def _absent(self, side: str, other: str, message: str) -> list[str]:
        query = (f"SELECT path FROM {side} WHERE NOT EXISTS (SELECT 1 FROM {other} WHERE {other}.path = "
                 f"{side}.path) ORDER BY path")
        lines, count = [], 0
        for (path,) in self._db.execute(query):
            count += 1
            if count <= MAX_SHOWN:
                lines.append(message.format(_text(path)))
        if count > MAX_SHOWN:
            lines.append(message.format(f"... and {count - MAX_SHOWN} more"))
        return lines


def _differs(path: bytes, kind: str, wanted_kind: str, size: int, wanted_size: int) -> str:
    name = _text(path)
    if kind != wanted_kind:
        return f"differs: {name}: a {kind} restored, a {wanted_kind} in the manifest"
    if kind == "file" and size != wanted_size:
        return f"differs: {name}: {size} bytes restored, {wanted_size} in the manifest"
    if kind == "file":
        return f"differs: {name}: sha256 differs from the manifest"
    return f"differs: {name}: link target differs from the manifest"
