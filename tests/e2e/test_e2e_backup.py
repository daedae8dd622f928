"""A real daemon takes real backups; archives are read back with the real zstd and tar CLIs."""
from __future__ import annotations

import filecmp
import hashlib
import json
import os
import sqlite3
import subprocess
import threading
from pathlib import Path

from tests.configs import command_source, directory_source, job, write_config
from tests.waiting import wait_for

def config(tmp_path: Path, sources=("files",), command=("sh", "-c", "printf hello-from-command")) -> Path:
    """Three sources (a folder, an SQLite database, a command); the job backs up `sources`."""
    return write_config(tmp_path, daemon={"log_format": "json"}, jobs={"main": job(sources)}, sources={
        "files": directory_source(tmp_path / "data", exclude=["*.tmp", "skip"]),
        "db": {"type": "sqlite", "path": tmp_path / "app.db"},
        "cmd": command_source(command, timeout="20s")})


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "skip").mkdir()
    (root / "skip" / "secret.txt").write_text("excluded")
    (root / "a.txt").write_text("alpha\n" * 1000)
    (root / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    (root / "junk.tmp").write_text("excluded too")
    (root / "link").symlink_to("sub/b.bin")


def extract(archive: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(f"zstd -dc '{archive}' | tar -x -C '{into}'", shell=True, check=True)
    return into


def only_archive(tmp_path: Path) -> Path:
    archives = sorted((tmp_path / "archives").glob("*.tar.zst"))
    assert len(archives) == 1, archives
    return archives[0]


def test_manual_backup_round_trips_byte_for_byte(tmp_path, start_daemon):
    make_tree(tmp_path / "data")
    daemon = start_daemon(config(tmp_path))
    record = daemon.ctl_json("trigger", "--wait")
    assert record["status"] == "success", record
    assert record["trigger"] == "manual" and record["error"] is None
    archive = only_archive(tmp_path)
    assert record["archive"]["name"] == archive.name
    assert archive.name.startswith("main-") and archive.name.endswith(f"-{record['run_id'][:8]}.tar.zst")
    assert record["archive"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    out = extract(archive, tmp_path / "restore")
    files = out / "files"
    assert filecmp.cmp(tmp_path / "data" / "a.txt", files / "a.txt", shallow=False)
    assert (files / "sub" / "b.bin").read_bytes() == (tmp_path / "data" / "sub" / "b.bin").read_bytes()
    assert (files / "sub" / "deeper" / "empty").read_bytes() == b""
    assert os.readlink(files / "link") == "sub/b.bin"
    assert not (files / "skip").exists() and not (files / "junk.tmp").exists()
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["job"] == "main" and manifest["run_id"] == record["run_id"]
    text = (out / "MANIFEST.json").read_text()
    assert hashlib.sha256((files / "a.txt").read_bytes()).hexdigest() in text
    history = daemon.ctl_json("history")["runs"]
    assert [run["run_id"] for run in history] == [record["run_id"]]
    listed = daemon.ctl_json("list")["backups"]
    assert [b["name"] for b in listed] == [archive.name] and listed[0]["destination"] == "local"
    events = {line["message"] for line in daemon.log_lines() if line.get("run_id") == record["run_id"]}
    assert {"run started", "source archived", "archive written", "destination stored", "run finished"} <= events
    assert not list((tmp_path / "state" / "spool").iterdir())


def _keep_writing(db_path: Path, stop: threading.Event, written: list) -> None:
    connection = sqlite3.connect(db_path, timeout=30)
    while not stop.is_set():
        with connection:
            connection.executemany("INSERT INTO events (payload) VALUES (?)", [(os.urandom(200).hex(),)] * 50)
        written.append(50)
    connection.close()


def test_sqlite_snapshot_while_another_process_writes(tmp_path, start_daemon):
    db_path = tmp_path / "app.db"
    with sqlite3.connect(db_path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT)")
        connection.executemany("INSERT INTO events (payload) VALUES (?)", [("x" * 500,)] * 20000)
    daemon = start_daemon(config(tmp_path, sources=["db"]))
    stop, written = threading.Event(), []
    writer = threading.Thread(target=_keep_writing, args=(db_path, stop, written))
    writer.start()
    try:
        wait_for(lambda: len(written) > 3, what="the writer to be busy")
        record = daemon.ctl_json("trigger", "--wait")
    finally:
        stop.set()
        writer.join()
    assert record["status"] == "success", record
    out = extract(only_archive(tmp_path), tmp_path / "restore")
    copy = sqlite3.connect(out / "db" / "app.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM events").fetchone()[0] >= 20000


def test_command_source_output_is_stored(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path, sources=["cmd"]))
    record = daemon.ctl_json("trigger", "--wait")
    assert record["status"] == "success", record
    out = extract(only_archive(tmp_path), tmp_path / "restore")
    assert (out / "cmd" / "out.txt").read_bytes() == b"hello-from-command"


def test_failing_source_is_recorded_and_daemon_keeps_serving(tmp_path, start_daemon):
    failing = ["sh", "-c", "echo disk on fire >&2; exit 3"]
    daemon = start_daemon(config(tmp_path, sources=["cmd"], command=failing))
    result = daemon.ctl("--json", "trigger", "--wait")
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed" and record["error"]["category"] == "source"
    assert "disk on fire" in record["error"]["message"] and "3" in record["error"]["message"]
    assert not list((tmp_path / "archives").glob("*")) if (tmp_path / "archives").exists() else True
    assert not [p for p in (tmp_path / "state" / "spool").iterdir()]
    status = daemon.ctl_json("status")
    assert status["jobs"][0]["last_run"]["status"] == "failed"
    assert daemon.ctl_json("history")["runs"][0]["error"]["category"] == "source"


def test_concurrent_triggers_share_one_run(tmp_path, start_daemon):
    slow = ["sh", "-c", "sleep 2; echo done"]
    daemon = start_daemon(config(tmp_path, sources=["cmd"], command=slow))
    results = [None] * 6

    def trigger(index):
        results[index] = daemon.ctl_json("trigger")

    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["run_id"] for r in results}) == 1, results
    assert sum(r["started"] for r in results) == 1
    wait_for(lambda: daemon.ctl_json("status")["jobs"][0]["running"] is None, what="the run to end")
    assert len(daemon.ctl_json("history")["runs"]) == 1


def test_unreachable_destination_keeps_the_archive_for_later(tmp_path, start_daemon):
    make_tree(tmp_path / "data")
    (tmp_path / "archives").write_text("a file where the destination folder should be")
    daemon = start_daemon(config(tmp_path))
    failed = daemon.ctl("--json", "trigger", "--wait")
    record = json.loads(failed.stdout)
    assert failed.returncode == 1 and record["error"]["category"] == "destination"
    assert record["destinations"][0]["status"] == "pending-upload"
    spooled = list((tmp_path / "state" / "spool").glob("*.tar.zst"))
    assert [p.name for p in spooled] == [record["archive"]["name"]]
    (tmp_path / "archives").unlink()
    retried = daemon.ctl_json("trigger", "--wait", "--upload-pending")
    assert retried["status"] == "success", retried
    assert only_archive(tmp_path).name == record["archive"]["name"]
    assert not list((tmp_path / "state" / "spool").glob("*.tar.zst"))
