"""An SQLite database: a consistent snapshot via the sqlite3 backup API, stored as a database or CSV files."""
from __future__ import annotations

import csv
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from ..config import SqliteSourceConfig
from .base import MemberSink, SourceError

BUSY_TIMEOUT = 30.0     # seconds to wait for a writer's lock before the snapshot fails


def _csv_value(value):
    """NULL -> empty field, BLOB -> hex; everything else as Python prints it."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex()
    return value


def _member_name(table: str) -> str:
    """A table name made safe as a file name inside the archive."""
    cleaned = table.replace("/", "_").replace("\x00", "_")
    return "_" + cleaned if cleaned in ("", ".", "..") else cleaned


class SqliteSource:
    def __init__(self, config: SqliteSourceConfig) -> None:
        self.name = config.name
        self.path = Path(config.path)
        self.format = config.format

    def write(self, sink: MemberSink, workdir: Path) -> None:
        snapshot = Path(workdir) / f"{self.name}.snapshot.sqlite"
        try:
            self._snapshot(snapshot)
            sink.check_cancel()
            if self.format == "csv":
                self._write_csv(sink, snapshot, Path(workdir))
            else:
                self._write_database(sink, snapshot)
        finally:
            snapshot.unlink(missing_ok=True)

    def _fail(self, what: str) -> SourceError:
        return SourceError(f"{self.path}: {what}")

    def _snapshot(self, target: Path) -> None:
        """Copy the database with the backup API in one step: readers see one consistent state."""
        if not self.path.is_file():
            raise self._fail("no such database file" if not self.path.exists() else "not a regular file")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        target.unlink(missing_ok=True)
        try:
            src = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
            try:
                dst = sqlite3.connect(target)
                try:
                    src.backup(dst)
                    dst.execute("PRAGMA journal_mode=DELETE")
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.DatabaseError as exc:
            raise self._fail(f"not a readable SQLite database ({exc})") from None
        except sqlite3.Error as exc:
            raise self._fail(f"snapshot failed ({exc})") from None

    def _write_database(self, sink: MemberSink, snapshot: Path) -> None:
        original = os.stat(self.path)
        with open(snapshot, "rb") as stream:
            sink.add_stream(self.path.name, stream, os.fstat(stream.fileno()).st_size,
                            mode=original.st_mode & 0o7777, mtime=original.st_mtime)

    def _write_csv(self, sink: MemberSink, snapshot: Path, workdir: Path) -> None:
        """One `<table>.csv` per table, with a header row, read from the snapshot copy."""
        db = sqlite3.connect(f"file:{quote(str(snapshot))}?mode=ro", uri=True)
        try:
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                "ESCAPE '\\' ORDER BY name")]
            for table in tables:
                sink.check_cancel()
                self._table_csv(sink, db, table, workdir / "table.csv")
        finally:
            db.close()

    @staticmethod
    def _table_csv(sink: MemberSink, db: sqlite3.Connection, table: str, scratch: Path) -> None:
        quoted = '"' + table.replace('"', '""') + '"'
        cursor = db.execute(f"SELECT * FROM {quoted}")
        try:
            with open(scratch, "w+", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow([column[0] for column in cursor.description])
                for rows in iter(lambda: cursor.fetchmany(1000), []):
                    writer.writerows([_csv_value(v) for v in row] for row in rows)
                out.flush()
                with open(scratch, "rb") as stream:
                    sink.add_stream(_member_name(table) + ".csv", stream, os.fstat(stream.fileno()).st_size)
        finally:
            scratch.unlink(missing_ok=True)
