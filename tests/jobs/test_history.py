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
