"""The FastAPI example end to end: its State backed up by a real daemon through the `python` source, a backup
triggered over HTTP, the Drive link from the loopback Drive, and the archive on Drive holding the notes."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from backupd.client import Client
from backupd.config import PythonSourceConfig, parse
from tests.configs import job, local_destination, write_config
from tests.e2e.daemon_harness import Daemon
from tests.fakes.drive import DriveServer
from tests.fakes.oauth import new_key
from tests.waiting import wait_for

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402  (after the skip: fastapi is a test extra)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
NOTES = [{"title": "shopping, weekly", "body": 'milk, "good" bread\nand eggs', "tags": ["home", "food"]},
         {"title": "Grüße aus Köln", "body": "", "tags": []}]


@pytest.fixture
def notes_api(tmp_path, monkeypatch):
    """The example API on a real daemon whose job backs up its State to a local folder and the loopback Drive."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("NOTES_DB", str(tmp_path / "notes.db"))
    from notes_app.api import create_app

    with DriveServer() as drive:
        credentials = tmp_path / "creds"
        credentials.mkdir()
        drive.write_credentials(credentials / "sa.json", drive.oauth.service_account(key=new_key()))
        example_source = tomllib.loads((EXAMPLE / "backupd.toml").read_text())["sources"]["notes"]
        source = {**example_source, "interpreter": sys.executable, "path": [str(EXAMPLE)],
                  "env": {"NOTES_DB": str(tmp_path / "notes.db")}}
        drive_destination = {"type": "gdrive", "credentials": "sa.json", "folder": "backupd/notes",
                             "endpoint": drive.url, "retry_deadline": "3s", "timeout": "3s"}
        config = write_config(tmp_path, jobs={"notes": job(["notes"], ["local", "drive"], schedule="30 2 * * *")},
                              sources={"notes": source},
                              destinations={"local": local_destination(tmp_path / "archives"),
                                            "drive": drive_destination})
        daemon = Daemon(tmp_path, config, {"CREDENTIALS_DIRECTORY": str(credentials)}).start()
        try:
            yield TestClient(create_app(Client(daemon.socket, timeout=60))), drive, daemon
        finally:
            daemon.stop()


def archived_table(archive: bytes, member: str) -> list[list[str]]:
    """A CSV member of a .tar.zst, read back with zstd, tar and csv.reader."""
    tar = subprocess.run(f"zstd -dc | tar -xO {member}", shell=True, input=archive, capture_output=True,
                         check=True)
    return list(csv.reader(io.StringIO(tar.stdout.decode("utf-8"), newline="")))


def test_backup_over_http_reaches_drive_with_the_notes(notes_api):
    api, drive, daemon = notes_api
    created = [api.post("/notes", json=note).json() for note in NOTES]
    assert api.get("/health").status_code == 503          # no backup yet

    answer = api.post("/backups", params={"wait": "true"})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "success" and record["link"].startswith("http")
    uploaded = next(d for d in record["destinations"] if d["name"] == "drive")
    assert uploaded["link"] == record["link"]
    archive = drive.content(uploaded["file_id"])
    assert archived_table(archive, "notes/notes.csv") == [
        ["id", "title", "body", "created"], *[[str(n["id"]), n["title"], n["body"], n["created"]] for n in created]]
    assert archived_table(archive, "notes/tags.csv") == [["note_id", "tag"], ["1", "food"], ["1", "home"]]

    history = api.get("/backups").json()
    assert [(run["run_id"], run["link"]) for run in history] == [(record["run_id"], record["link"])]
    upcoming = api.get("/backups/next").json()
    assert upcoming["next_run"].startswith("20") and "T02:30:00" in upcoming["next_run"]
    health = api.get("/health")
    assert health.status_code == 200 and health.json()["last_success"]["link"] == record["link"]


def test_trigger_without_waiting_and_errors_as_http_status(notes_api, tmp_path):
    api, _, daemon = notes_api
    api.post("/notes", json=NOTES[0])
    started = api.post("/backups").json()
    assert started["job"] == "notes" and started["run_id"]
    backupd = Client(daemon.socket)

    def ended():
        runs = backupd.history(limit=1)
        return runs and runs[0].run_id == started["run_id"] and runs[0].status != "running"
    wait_for(ended, "the backup started over HTTP to end")
    (tmp_path / "notes.db").rename(tmp_path / "moved.db")      # the State cannot load: a source failure
    failed = api.post("/backups", params={"wait": "true"})
    assert failed.status_code == 502 and failed.json()["run"]["error"]["category"] == "source"
    assert "unable to open database file" in failed.json()["run"]["error"]["message"]
    daemon.stop()
    assert api.get("/health").status_code == 503
    assert api.post("/backups").status_code == 503


def test_the_example_config_parses_as_a_python_source(tmp_path):
    config = parse(tomllib.loads((EXAMPLE / "backupd.toml").read_text()), tmp_path / "backupd.toml")
    source = config.sources["notes"]
    assert isinstance(source, PythonSourceConfig) and source.factory == "notes_app.state:State"
    assert dict(source.env) == {"NOTES_DB": "/srv/notes/notes.db"}
