"""What the restore tests back up and check: a directory tree (modes, mtimes, symlinks, owners when root),
an SQLite database as a copy and as CSV, and a command's output, stored on a local destination and on the
loopback Drive; check() compares a restore with the originals."""
from __future__ import annotations

import csv
import os
import sqlite3
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.archive.helpers import tree_state
from tests.configs import command_source, directory_source, job, local_destination, write_config
from tests.restore.test_restore_roundtrip import make_tree

COMMAND_OUTPUT = "hello from a command\n"
ROWS = [(index, f"name {index}", os.urandom(40)) for index in range(300)]
OWNED = "a.txt"             # chowned to OWNER when the tests run as root
OWNER = (1234, 5678)


@dataclass
class World:
    base: Path
    data: Path
    database: Path
    config: Path
    socket: Path

    def archives(self) -> list[Path]:
        return sorted((self.base / "disk").glob("*.tar.zst"))


def make_world(base: Path, drive, rsa_key, socket: Path | None = None, control_group: str = "") -> World:
    data = base / "data"
    data.mkdir()
    make_tree(data)
    if os.geteuid() == 0:
        os.chown(data / OWNED, *OWNER)
    database = base / "app.db"
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)")
    db.executemany("INSERT INTO items VALUES (?, ?, ?)", ROWS)
    db.commit()
    db.close()
    credentials = drive.write_credentials(base / "sa.json", drive.oauth.service_account(key=rsa_key))
    gdrive = {"type": "gdrive", "credentials": str(credentials), "folder": "backupd/restore", "endpoint": drive.url,
              "chunk_size": "256KiB", "retry_deadline": "5s", "timeout": "3s"}
    sources = {"files": directory_source(data), "db": {"type": "sqlite", "path": str(database)},
               "dbcsv": {"type": "sqlite", "path": str(database), "format": "csv"},
               "cmd": command_source(["printf", COMMAND_OUTPUT], output="out.txt")}
    socket = socket or base / "ctl.sock"
    config = write_config(base, sources=sources, daemon={"socket": socket, "control_group": control_group},
                          destinations={"disk": local_destination(base / "disk"), "drive": gdrive},
                          jobs={"main": job(list(sources), ["disk", "drive"])})
    return World(base, data, database, config, socket)


def check(world: World, out: Path) -> None:
    """`out` holds every source as it was backed up, byte for byte."""
    assert sorted(os.listdir(out)) == ["cmd", "db", "dbcsv", "files"]
    assert tree_state(out / "files") == tree_state(world.data)
    st, original = (out / "files").lstat(), world.data.lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (stat.S_IMODE(original.st_mode), original.st_mtime_ns)
    owner = (out / "files" / OWNED).lstat()
    assert (owner.st_uid, owner.st_gid) == (OWNER if os.geteuid() == 0 else (os.geteuid(), os.getegid()))
    restored_db = out / "db" / world.database.name
    check_db = subprocess.run(["sqlite3", str(restored_db), "pragma integrity_check"], capture_output=True, text=True)
    assert check_db.stdout.strip() == "ok", check_db.stderr
    db = sqlite3.connect(restored_db)
    assert db.execute("SELECT id, name, payload FROM items ORDER BY id").fetchall() == ROWS
    db.close()
    with open(out / "dbcsv" / "items.csv", newline="") as table:
        rows = list(csv.reader(table))
    assert rows[0] == ["id", "name", "payload"] and len(rows) == len(ROWS) + 1
    assert rows[1][:2] == ["0", "name 0"]
    assert (out / "cmd" / "out.txt").read_text() == COMMAND_OUTPUT


def loosen(*trees: Path) -> None:
    """Make the read-only folder of make_tree writable again so the tree can be removed."""
    for tree in trees:
        for ro in tree.glob("**/ro"):
            if ro.is_dir() and not ro.is_symlink():
                os.chmod(ro, 0o755)
