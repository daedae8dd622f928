"""The audit trail: every run in a SQLite database in the state directory, plus the little state runs share
(last scheduled slot per job, archives waiting for an upload)."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from ..util.clock import iso, parse_iso, utc_now
from .result import RunRecord, Status
from .verify_record import VerifyRecord, VerifyStatus

log = logging.getLogger("backupd.history")
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, job TEXT NOT NULL, trigger TEXT NOT NULL, status TEXT NOT NULL,
    started TEXT NOT NULL, ended TEXT, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_job_started ON runs (job, started);
CREATE TABLE IF NOT EXISTS job_state (job TEXT PRIMARY KEY, last_slot TEXT);
CREATE TABLE IF NOT EXISTS verifications (
    verify_id TEXT PRIMARY KEY, job TEXT NOT NULL, archive TEXT NOT NULL, destination TEXT NOT NULL,
    status TEXT NOT NULL, started TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS verifications_job_started ON verifications (job, started);
CREATE TABLE IF NOT EXISTS pending_uploads (
    archive TEXT NOT NULL, destination TEXT NOT NULL, job TEXT NOT NULL, run_id TEXT NOT NULL,
    meta TEXT NOT NULL, PRIMARY KEY (archive, destination));
CREATE TABLE IF NOT EXISTS held_uploads (
    archive TEXT NOT NULL, destination TEXT NOT NULL, error TEXT NOT NULL, since TEXT NOT NULL,
    PRIMARY KEY (archive, destination));
CREATE TABLE IF NOT EXISTS failed_checks (
    archive TEXT NOT NULL, destination TEXT NOT NULL, checked TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (archive, destination));
CREATE TABLE IF NOT EXISTS alerts (job TEXT PRIMARY KEY, watched_since TEXT NOT NULL, stale_since TEXT);
CREATE TABLE IF NOT EXISTS owed_alerts (run_id TEXT PRIMARY KEY, owed TEXT NOT NULL, delivered TEXT);
CREATE TABLE IF NOT EXISTS deletions (
    archive TEXT NOT NULL, destination TEXT NOT NULL, job TEXT NOT NULL, removed_at TEXT NOT NULL,
    removed_by TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (archive, destination));
"""
DELETION_FIELDS = ("archive", "destination", "job", "removed_at", "removed_by", "reason")


class History:
    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "history.db"
        self._lock = threading.Lock()
        self._unsaved: dict[str, RunRecord] = {}     # run id -> record whose last write failed
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def _run(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def save(self, record: RunRecord) -> bool:
        """Insert or update one run (at its start, once its archive is written, at its end); never raises.

        A write that fails (a full disk: "database or disk is full") is logged, kept, and retried with every
        later save() and by flush(), so a run's last state reaches the trail once there is room again and
        reads see it meanwhile. True if nothing is left waiting."""
        with self._lock:
            self._unsaved[record.run_id] = record
            return self._write_unsaved()

    def flush(self) -> bool:
        """Retry the writes that failed; True if nothing is left waiting."""
        with self._lock:
            return self._write_unsaved()

    def _write_unsaved(self) -> bool:
        for run_id, record in list(self._unsaved.items()):
            data = record.to_dict()
            try:
                self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (run_id, record.job, record.trigger, record.status, data["started"],
                                  data["ended"], json.dumps(data)))
            except (sqlite3.Error, OSError) as exc:
                log.error("cannot write the run history; retried at the next write",
                          extra={"run_id": run_id, "status": record.status, "path": str(self.path),
                                 "error": str(exc)})
                return False
            del self._unsaved[run_id]
        return True

    def _waiting(self, job: str | None) -> list[RunRecord]:
        """Copies of the records whose write is still waiting."""
        with self._lock:
            return [RunRecord.from_dict(r.to_dict()) for r in self._unsaved.values() if job in (None, r.job)]

    def mark_interrupted(self) -> list[str]:
        """Runs left 'running' by a process that died: mark them interrupted, each owing its failure alert;
        return their ids."""
        stale = [RunRecord.from_dict(json.loads(row[0]))
                 for row in self._run("SELECT record FROM runs WHERE status = ?", (Status.RUNNING,))]
        for record in stale:
            record.interrupt("the daemon stopped while this run was in progress; "
                             "its temporary files were discarded")
            self.owe_alert(record.run_id)       # first: a death in between leaves it running, found again
            self.save(record)
        return [record.run_id for record in stale]

    def runs(self, job: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """The newest `limit` runs (all when None), newest first."""
        limit = -1 if limit is None else limit      # SQLite: a negative LIMIT is no limit
        where, params = ("WHERE job = ?", (job,)) if job else ("", ())
        rows = self._run(f"SELECT record FROM runs {where} ORDER BY started DESC, rowid DESC LIMIT ?",
                         (*params, limit))
        found = [RunRecord.from_dict(json.loads(row[0])) for row in rows]
        waiting = self._waiting(job)
        if not waiting:
            return found
        ids = {record.run_id for record in waiting}
        merged = sorted([r for r in found if r.run_id not in ids] + waiting, key=lambda r: r.started, reverse=True)
        return merged[:limit] if limit >= 0 else merged

    def last_run(self, job: str) -> RunRecord | None:
        found = self.runs(job, limit=1)
        return found[0] if found else None

    def get(self, run_id: str) -> RunRecord | None:
        waiting = [record for record in self._waiting(None) if record.run_id == run_id]
        if waiting:
            return waiting[0]
        rows = self._run("SELECT record FROM runs WHERE run_id = ?", (run_id,))
        return RunRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def last_slot(self, job: str) -> datetime | None:
        rows = self._run("SELECT last_slot FROM job_state WHERE job = ?", (job,))
        return parse_iso(rows[0][0]) if rows else None

    def set_last_slot(self, job: str, slot: datetime) -> None:
        """Record `slot` as handled; a slot older than the one recorded (the clock went back) changes nothing."""
        self._run("INSERT INTO job_state VALUES (?, ?) ON CONFLICT (job) DO UPDATE SET last_slot = "
                  "MAX(last_slot, excluded.last_slot)", (job, iso(slot)))    # iso() is UTC: text sorts as time

    def add_pending(self, archive: str, destination: str, job: str, run_id: str, meta: dict) -> None:
        self._run("INSERT OR REPLACE INTO pending_uploads VALUES (?, ?, ?, ?, ?)",
                  (archive, destination, job, run_id, json.dumps(meta)))

    def pending(self, job: str | None = None) -> list[dict]:
        where, params = ("WHERE job = ?", (job,)) if job else ("", ())
        rows = self._run(f"SELECT archive, destination, job, run_id, meta FROM pending_uploads {where}", params)
        return [dict(zip(("archive", "destination", "job", "run_id"), row[:4]), meta=json.loads(row[4]))
                for row in rows]

    def remove_pending(self, archive: str, destination: str) -> None:
        self._run("DELETE FROM pending_uploads WHERE archive = ? AND destination = ?", (archive, destination))
        self.unhold(archive, destination)

    # -- uploads that failed permanently wait for a reload or `trigger --upload-pending` --------------------------
    def hold_pending(self, archive: str, destination: str, error: str) -> None:
        self._run("INSERT OR REPLACE INTO held_uploads VALUES (?, ?, ?, ?)",
                  (archive, destination, error, iso(utc_now())))

    def held(self) -> dict[tuple[str, str], dict]:
        """(archive, destination) -> {"error", "since"} of the pending uploads held back."""
        rows = self._run("SELECT archive, destination, error, since FROM held_uploads")
        return {(row[0], row[1]): {"error": row[2], "since": row[3]} for row in rows}

    def unhold(self, archive: str, destination: str) -> None:
        self._run("DELETE FROM held_uploads WHERE archive = ? AND destination = ?", (archive, destination))

    def release_held(self) -> int:
        """Let every held upload be retried by the next run; how many there were."""
        with self._lock:
            return self._db.execute("DELETE FROM held_uploads").rowcount

    # -- verification results and pruning ------------------------------------------------------------------------
    def record_check(self, archive: str, destination: str, ok: bool, detail: str = "") -> None:
        """A verification of `archive` at `destination`: a failure is kept until a later check passes."""
        if ok:
            self._run("DELETE FROM failed_checks WHERE archive = ? AND destination = ?", (archive, destination))
        else:
            self._run("INSERT OR REPLACE INTO failed_checks VALUES (?, ?, ?, ?)",
                      (archive, destination, iso(utc_now()), detail))

    def failed_checks(self, destination: str) -> set[str]:
        """The archives at `destination` whose last verification failed."""
        return {row[0] for row in self._run("SELECT archive FROM failed_checks WHERE destination = ?",
                                            (destination,))}

    def record_deletion(self, archive: str, destination: str, job: str, by: str, reason: str) -> bool:
        """Record that pruning removed `archive` from `destination`; False if that was recorded before."""
        with self._lock:
            return self._db.execute("INSERT OR IGNORE INTO deletions VALUES (?, ?, ?, ?, ?, ?)",
                                    (archive, destination, job, iso(utc_now()), by, reason)).rowcount == 1

    def forget_deletion(self, archive: str, destination: str) -> None:
        """A removal recorded as pruning began it did not happen after all (the delete failed)."""
        self._run("DELETE FROM deletions WHERE archive = ? AND destination = ?", (archive, destination))

    def deletions(self, job: str | None = None) -> list[dict]:
        """What pruning removed, oldest first."""
        where, params = ("WHERE job = ?", (job,)) if job else ("", ())
        rows = self._run(f"SELECT {', '.join(DELETION_FIELDS)} FROM deletions {where} ORDER BY removed_at, rowid",
                         params)
        return [dict(zip(DELETION_FIELDS, row)) for row in rows]

    # -- verifications of stored backups (record kind `verify`) ------------------------------------------------
    def save_verification(self, record: VerifyRecord) -> None:
        """Keep a verification; one that passed or failed (not one that could not finish) is also its
        backup's check result at that destination (record_check), which retention reads."""
        data = record.to_dict()
        self._run("INSERT OR REPLACE INTO verifications VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (record.verify_id, record.job, record.archive, record.destination, record.status,
                   data["started"], json.dumps(data)))
        if record.status != VerifyStatus.ERROR:
            self.record_check(record.archive, record.destination, record.ok,
                              record.problems[0] if record.problems else "")

    def verifications(self, job: str | None = None, limit: int | None = None) -> list[VerifyRecord]:
        """The newest `limit` verifications (all when None), newest first."""
        where, params = ("WHERE job = ?", (job,)) if job else ("", ())
        rows = self._run(f"SELECT record FROM verifications {where} ORDER BY started DESC, rowid DESC LIMIT ?",
                         (*params, -1 if limit is None else limit))
        return [VerifyRecord.from_dict(json.loads(row[0])) for row in rows]

    def last_verdicts(self) -> dict[tuple[str, str], VerifyRecord]:
        """(job, destination) -> its newest verification that passed or failed (not one that could not finish)."""
        rows = self._run("SELECT record FROM (SELECT record, ROW_NUMBER() OVER (PARTITION BY job, destination "
                         "ORDER BY started DESC, rowid DESC) AS newest FROM verifications WHERE status != ?) "
                         "WHERE newest = 1", (VerifyStatus.ERROR,))     # rowid: two in the same second
        found = [VerifyRecord.from_dict(json.loads(row[0])) for row in rows]
        return {(record.job, record.destination): record for record in found}

    # -- monitoring: successes, run counts, stale episodes (one row per job watched for alert_after) --------------
    def last_success(self, job: str) -> RunRecord | None:
        rows = self._run("SELECT record FROM runs WHERE job = ? AND status = ? ORDER BY started DESC, rowid DESC "
                         "LIMIT 1", (job, Status.SUCCESS))
        return RunRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def run_counts(self) -> dict[tuple[str, str], int]:
        """(job, status) -> how many runs the trail holds."""
        return {(job, status): count for job, status, count in
                self._run("SELECT job, status, COUNT(*) FROM runs GROUP BY job, status")}

    def watched_since(self, job: str, now: datetime) -> datetime:
        """When the stale check first watched `job` (`now` the first time it is asked)."""
        self._run("INSERT OR IGNORE INTO alerts VALUES (?, ?, NULL)", (job, iso(now)))
        return parse_iso(self._run("SELECT watched_since FROM alerts WHERE job = ?", (job,))[0][0])

    def stale_since(self, job: str) -> datetime | None:
        """When the open stale episode of `job` was alerted, or None."""
        rows = self._run("SELECT stale_since FROM alerts WHERE job = ?", (job,))
        return parse_iso(rows[0][0]) if rows else None

    def set_stale(self, job: str, since: datetime | None) -> None:
        """Open (a time) or close (None) the stale episode of `job`."""
        self._run("UPDATE alerts SET stale_since = ? WHERE job = ?", (iso(since), job))

    # -- failure alerts of runs that ended without sending their own (abandoned at a stop, killed) ---------------
    def owe_alert(self, run_id: str) -> None:
        """`run_id` owes its on_failure and /fail (kept as it was if already owed or delivered)."""
        self._run("INSERT OR IGNORE INTO owed_alerts VALUES (?, ?, NULL)", (run_id, iso(utc_now())))

    def owed_alerts(self) -> list[str]:
        """The runs whose failure alert is owed and not delivered yet, oldest first."""
        return [row[0] for row in self._run("SELECT run_id FROM owed_alerts WHERE delivered IS NULL "
                                            "ORDER BY owed, rowid")]

    def alert_delivered(self, run_id: str) -> None:
        self._run("UPDATE owed_alerts SET delivered = ? WHERE run_id = ?", (iso(utc_now()), run_id))

    def forgive_alert(self, run_id: str) -> None:
        """`run_id` owes no alert after all (found stored at the next start)."""
        self._run("DELETE FROM owed_alerts WHERE run_id = ? AND delivered IS NULL", (run_id,))

    def close(self) -> None:
        with self._lock:
            self._write_unsaved()
            self._db.close()
