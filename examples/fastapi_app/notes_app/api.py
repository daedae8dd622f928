"""The notes service's HTTP API, with its backups: trigger one (and wait for its Drive link), the history, the
next scheduled run and a health check, all through backupd.client.

    NOTES_DB=/srv/notes/notes.db BACKUPD_SOCKET=/run/backupd/backupd.sock uvicorn notes_app.api:app
"""
from __future__ import annotations

import os
from contextlib import closing
from datetime import datetime, timezone

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backupd.client import BackupFailed, Client, ClientError, DaemonUnreachable, PermissionDenied, RemoteError

from .state import State, connect

# what each client error is to a caller of this API
STATUS_OF = {DaemonUnreachable: 503, PermissionDenied: 503, RemoteError: 409}


class NewNote(BaseModel):
    title: str
    body: str = ""
    tags: list[str] = []


def create_app(client: Client | None = None, job: str | None = None) -> FastAPI:
    """The API; `client` talks to backupd ($BACKUPD_SOCKET), `job` names the backup job ($BACKUPD_JOB)."""
    client = client or Client()
    job = job or os.environ.get("BACKUPD_JOB") or None
    app = FastAPI(title="notes")

    @app.exception_handler(ClientError)
    def backup_error(request, exc: ClientError):
        if isinstance(exc, BackupFailed):
            return JSONResponse(status_code=502, content={"error": str(exc), "run": exc.record.to_dict()})
        return JSONResponse(status_code=STATUS_OF.get(type(exc), 500), content={"error": str(exc)})

    @app.post("/notes", status_code=201)
    def add_note(note: NewNote) -> dict:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with closing(connect()) as db, db:
            note_id = db.execute("INSERT INTO notes (title, body, created) VALUES (?, ?, ?)",
                                 (note.title, note.body, created)).lastrowid
            db.executemany("INSERT INTO tags VALUES (?, ?)", [(note_id, tag) for tag in note.tags])
        return {"id": note_id, "title": note.title, "body": note.body, "created": created, "tags": note.tags}

    @app.get("/notes")
    def list_notes() -> list[dict]:
        return [dict(zip(("id", "title", "body", "created"), row)) for row in State().notes]

    @app.post("/backups")
    def trigger_backup(wait: bool = False) -> dict:
        """Start a backup now; with ?wait=true answer once it ended, with its archive and Drive link."""
        result = client.trigger(job, wait=wait)
        return {**result.to_dict(), "link": result.link} if wait else result.to_dict()

    @app.get("/backups")
    def backup_history(limit: int = 20) -> list[dict]:
        return [{**run.to_dict(), "link": run.link} for run in client.history(job, limit=limit)]

    @app.get("/backups/next")
    def next_backup() -> dict:
        when = client.next_run(job)
        return {"job": job, "next_run": when.isoformat() if when else None}

    @app.get("/health")
    def health() -> JSONResponse:
        """200 while backupd answers and the newest finished backup succeeded; 503 otherwise."""
        try:
            status = client.status()
            runs = client.history(job, limit=50)
        except ClientError as exc:
            return JSONResponse(status_code=503, content={"ok": False, "backupd": str(exc)})
        finished = [run for run in runs if run.status != "running"]
        last_success = next((run for run in finished if run.ok), None)
        ok = bool(finished) and finished[0].ok
        body = {"ok": ok, "backupd": status.status_text, "version": status.version,
                "last_success": {"run_id": last_success.run_id, "ended": last_success.to_dict()["ended"],
                                 "archive": last_success.archive_name, "link": last_success.link}
                if last_success else None}
        return JSONResponse(status_code=200 if ok else 503, content=body)

    return app


def __getattr__(name: str):
    """`notes_app.api:app` for uvicorn, built on first use (importing the module needs no daemon)."""
    if name == "app":
        return create_app()
    raise AttributeError(name)

