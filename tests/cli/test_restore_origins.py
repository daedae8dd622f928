"""restore --config reads the daemon's history read-only: runs still in the WAL (the daemon running, or
killed) are seen; no history means the destinations' listings are asked."""
from __future__ import annotations

from backupd.cli.restore_origins import trail_records
from backupd.jobs.history import History
from backupd.jobs.result import ArchiveInfo, RunRecord


def test_runs_still_in_the_write_ahead_log_are_read(tmp_path):
    history = History(tmp_path)         # kept open: its writes stay in history.db-wal
    for run_id in ("aaaaaaaa0001", "aaaaaaaa0002"):
        history.save(RunRecord(run_id=run_id, job="main", trigger="manual", status="success",
                               archive=ArchiveInfo(name=f"{run_id}.tar.zst", size=1, sha256="ab" * 32)))
    try:
        assert (tmp_path / "history.db-wal").stat().st_size > 0
        assert [r.run_id for r in trail_records(tmp_path)] == ["aaaaaaaa0002", "aaaaaaaa0001"]
    finally:
        history.close()
    assert [r.run_id for r in trail_records(tmp_path)] == ["aaaaaaaa0002", "aaaaaaaa0001"]


def test_no_history_is_none(tmp_path):
    assert trail_records(tmp_path / "missing") is None
    (tmp_path / "history.db").write_bytes(b"not a database")
    assert trail_records(tmp_path) is None
