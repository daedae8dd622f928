"""The application's state: loaded fresh from the database by each State(), exported as CSV tables by dump().

backupd's `python` source calls `State()` in a child process of this application's interpreter for every
backup, then `dump(folder)`: the returned tables become notes.csv and tags.csv in the archive. Standard
library only, so that the API and the backup use the same class.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tags (note_id INTEGER NOT NULL REFERENCES notes(id), tag TEXT NOT NULL);
"""


def database() -> Path:
    """Where the notes live: $NOTES_DB."""
    return Path(os.environ["NOTES_DB"])


def connect(path: Path | None = None) -> sqlite3.Connection:
    """The database for the API's writes (the tables are created if missing)."""
    db = sqlite3.connect(path or database())
    db.executescript(SCHEMA)
    return db


def read_only(path: Path | None = None) -> sqlite3.Connection:
    """The database for reading: a backup needs no write access to it."""
    return sqlite3.connect(f"file:{quote(str(path or database()))}?mode=ro", uri=True)


class State:
    """Every note and tag, read in one transaction: one consistent picture of the application's data."""

    def __init__(self, path: Path | None = None) -> None:
        with closing(read_only(path)) as db:
            db.execute("BEGIN")           # both tables from the same snapshot
            self.notes = db.execute("SELECT id, title, body, created FROM notes ORDER BY id").fetchall()
            self.tags = db.execute("SELECT note_id, tag FROM tags ORDER BY note_id, tag").fetchall()

    def dump(self, folder: Path) -> dict:
        """The tables backupd writes as CSV (the first row of each is its header)."""
        return {"notes": [("id", "title", "body", "created"), *self.notes],
                "tags": [{"note_id": note, "tag": tag} for note, tag in self.tags]}
