"""The audit trail survives restarts and marks runs a dead process left behind."""
from __future__ import annotations

from backupd.jobs.history import History
from backupd.jobs.result import ArchiveInfo, DestinationResult, RunRecord, utc_now


def test_records_round_trip_and_interrupted_runs_are_marked(tmp_path):
    history = History(tmp_path)
    done = RunRecord(run_id="aaa", job="daily", trigger="schedule", status="success", ended=utc_now(),
                     archive=ArchiveInfo(name="x.tar.zst", size=10, sha256="ab" * 32),
                     destinations=[DestinationResult(name="local", status="success", location="/x")])
    history.save(done)
    history.save(RunRecord(run_id="bbb", job="daily", trigger="manual"))
    history.close()

    reopened = History(tmp_path)
    assert reopened.mark_interrupted() == ["bbb"]
    runs = reopened.runs("daily")
    assert [r.run_id for r in runs] == ["bbb", "aaa"]
    assert runs[0].status == "interrupted" and runs[0].error.category == "internal"
    assert runs[1].to_dict() == done.to_dict()
    assert reopened.mark_interrupted() == []


def test_pending_uploads(tmp_path):
    history = History(tmp_path)
    history.add_pending("x.tar.zst", "drive", "daily", "aaa", {"name": "x.tar.zst"})
    assert history.pending("daily")[0]["meta"] == {"name": "x.tar.zst"}
    assert history.pending("other") == []
    history.remove_pending("x.tar.zst", "drive")
    assert history.pending() == []


def _cap_size(history: History, pages: int) -> None:
    """Make the database full (SQLite's own limit: the same "database or disk is full" a full disk gives)."""
    history._db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_failed_write_never_leaves_a_run_running_and_is_retried(tmp_path):
    history = History(tmp_path)
    record = RunRecord(run_id="aaa", job="daily", trigger="manual")
    history.save(record)
    _cap_size(history, history._db.execute("PRAGMA page_count").fetchone()[0])
    record.fail("archive", "cannot write the archive: " + "x" * 200_000)    # needs pages the file cannot get
    record.ended = utc_now()
    assert history.save(record) is False            # logged, kept, not raised
    assert history.get("aaa").status == "failed"    # what readers see meanwhile
    assert [r.status for r in history.runs("daily")] == ["failed"]
    _cap_size(history, 1 << 20)                      # room again
    history.save(RunRecord(run_id="bbb", job="daily", trigger="manual"))
    history.close()
    reopened = History(tmp_path)
    assert reopened.get("aaa").status == "failed" and reopened.get("aaa").ended is not None
    assert {r.run_id for r in reopened.runs("daily")} == {"aaa", "bbb"}


def test_interrupted_runs_get_an_end_time(tmp_path):
    history = History(tmp_path)
    history.save(RunRecord(run_id="ccc", job="daily", trigger="schedule"))
    history.close()
    reopened = History(tmp_path)
    reopened.mark_interrupted()
    assert reopened.get("ccc").ended is not None
