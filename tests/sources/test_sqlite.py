"""The sqlite source: a consistent snapshot while another process keeps writing, and CSV export."""
from __future__ import annotations

import csv
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backupd.sources.base import SourceError
from backupd.sources.sqlite import SqliteSource
from tests.archive.helpers import extract, read_manifest, sha256_file, source_config, write_archive
from tests.waiting import wait_for

# Inserts pairs of rows (+n, -n) in one transaction each, forever: a consistent copy sums to zero.
# The short pause paces the workload like a real application (a tight loop starves readers in
# rollback-journal mode, which is SQLite's locking, not backupd's).
WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
n = 0
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO ledger (amount, note) VALUES (?, ?)", (n, "x" * 200))
    db.execute("INSERT INTO ledger (amount, note) VALUES (?, ?)", (-n, "y" * 200))
    db.execute("COMMIT")
    time.sleep(0.0005)
"""


def create_db(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, note TEXT);
        CREATE TABLE "odd ""name""/x" (k TEXT, v BLOB, n REAL);
        INSERT INTO "odd ""name""/x" VALUES ('a,b', x'00ff', 1.5), (NULL, NULL, NULL);
    """)
    db.commit()
    db.close()


def row_count(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM ledger").fetchone()[0]
    finally:
        db.close()


def wait_for_rows(path: Path, minimum: int, deadline: float = 30.0) -> None:
    wait_for(lambda: row_count(path) >= minimum, f"the writer to insert {minimum} rows", deadline)


def backup(tmp_path: Path, db: Path, **options):
    source = SqliteSource(source_config("app", "sqlite", path=db, **options))
    archive = tmp_path / "run.tar.zst.tmp"
    stats = write_archive(archive, [source], tmp_path / "work")
    return extract(archive, tmp_path / "restored"), stats


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_snapshot_is_consistent_while_another_process_writes(tmp_path, journal):
    db = tmp_path / "app.db"
    create_db(db)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), journal])
    try:
        wait_for_rows(db, 200)
        restored, stats = backup(tmp_path, db)
        assert writer.poll() is None, "the writer stopped before the backup finished"
        during = row_count(db)
    finally:
        writer.kill()
        writer.wait()
    copy = restored / "app" / "app.db"
    check = sqlite3.connect(copy)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count, total = check.execute("SELECT count(*), sum(amount) FROM ledger").fetchone()
    check.close()
    assert 200 <= count <= during and count % 2 == 0 and total == 0
    assert read_manifest(restored)["members"][0]["sha256"] == sha256_file(copy)
    assert stats.warnings == []


def test_source_database_is_not_modified(tmp_path):
    db = tmp_path / "app.db"
    create_db(db)
    before = (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns)
    restored, _ = backup(tmp_path, db)
    assert (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "restored", "run.tar.zst.tmp", "work"]
    assert list((tmp_path / "work").iterdir()) == []


def test_csv_format_writes_one_file_per_table_with_header_rows(tmp_path):
    db = tmp_path / "app.db"
    create_db(db)
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO ledger (amount, note) VALUES (?, ?)", [(1, "one"), (-1, 'quote " and\nline')])
    restored, _ = backup(tmp_path, db, format="csv")
    files = sorted(p.name for p in (restored / "app").iterdir())
    assert files == ["ledger.csv", 'odd "name"_x.csv']
    with open(restored / "app" / "ledger.csv", newline="") as f:
        assert list(csv.reader(f)) == [["id", "amount", "note"], ["1", "1", "one"],
                                       ["2", "-1", 'quote " and\nline']]
    with open(restored / "app" / 'odd "name"_x.csv', newline="") as f:
        assert list(csv.reader(f)) == [["k", "v", "n"], ["a,b", "00ff", "1.5"], ["", "", ""]]


def test_missing_database_fails_naming_the_path(tmp_path):
    with pytest.raises(SourceError, match=f"^{tmp_path / 'gone.db'}: no such database file"):
        backup(tmp_path, tmp_path / "gone.db")


def test_file_that_is_not_a_database_fails_naming_the_path(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("this is plain text, not SQLite\n" * 100)
    with pytest.raises(SourceError, match=f"{bogus}: not a readable SQLite database"):
        backup(tmp_path, bogus)
    assert bogus.read_text().startswith("this is plain text")
