"""`backupctl check` and the stale alert against a real daemon whose audit trail the test wrote ahead (a last
success made old without waiting), and `backupctl status`'s warning marker."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from backupd.jobs.history import History
from tests.configs import directory_source, job, local_destination, write_config
from tests.jobs.records import saved_run
from tests.waiting import wait_for

HOUR = timedelta(hours=1)


def config(tmp_path: Path) -> Path:
    """Four jobs: fresh and stale back up tmp_path/data, failed a missing folder, never is never run."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "file.txt").write_text("payload\n")
    alerts = ["sh", "-c", f'echo "$BACKUPD_JOB $BACKUPD_ERROR_CATEGORY" >> {tmp_path / "alerts.txt"}']
    return write_config(tmp_path, daemon={"metrics_file": tmp_path / "backupd.prom"}, jobs={
        "fresh": job(["files"]), "failed": job(["missing"]), "never": job(["files"]),
        "stale": job(["files"], alert_after="26h", on_failure=alerts)},
        sources={"files": directory_source(tmp_path / "data"), "missing": directory_source(tmp_path / "nowhere")},
        destinations={"local": local_destination(tmp_path / "archives")})


def alerts(tmp_path: Path) -> list[str]:
    path = tmp_path / "alerts.txt"
    return path.read_text().splitlines() if path.exists() else []


def stale_in_metrics(tmp_path: Path, value: str) -> bool:
    path = tmp_path / "backupd.prom"
    return path.exists() and f'backupd_job_stale{{job="stale"}} {value}' in path.read_text()


def started(tmp_path: Path, start_daemon):
    path = config(tmp_path)
    history = History(tmp_path / "state")
    saved_run(history, "stale", ago=30 * HOUR, size=2048)
    history.close()
    daemon = start_daemon(path)
    daemon.ctl("trigger", "fresh", "--wait", check=True)
    assert daemon.ctl("trigger", "failed", "--wait").returncode == 1
    return daemon


def test_check_lines_and_exit_codes(tmp_path, start_daemon):
    daemon = started(tmp_path, start_daemon)
    fresh = daemon.ctl("check", "--job", "fresh")
    assert fresh.returncode == 0
    assert re.fullmatch(r"OK fresh: last success \d+s ago \(archive \d+ B, local\)", fresh.stdout.strip())
    every = daemon.ctl("check")
    lines = every.stdout.splitlines()
    assert every.returncode == 1 and [line.split(":")[0] for line in lines] == [
        "OK fresh", "CRITICAL failed", "CRITICAL never", "CRITICAL stale"]
    assert lines[1].startswith("CRITICAL failed: never succeeded; last run failed: ") and "nowhere" in lines[1]
    assert lines[2] == "CRITICAL never: never succeeded; no run yet"
    assert lines[3] == "CRITICAL stale: last success 1d6h ago (over 1d2h)"
    assert daemon.ctl("check", "--job", "stale", "--max-age", "2d").returncode == 0
    answer = daemon.ctl("--json", "check", "--job", "stale")
    result = json.loads(answer.stdout)
    assert answer.returncode == 1 and result["ok"] is False
    assert result["jobs"][0]["state"] == "CRITICAL" and result["jobs"][0]["max_age_s"] == 26 * 3600
    assert daemon.ctl("check", "--max-age", "soon").returncode == 2
    assert "no job named 'nope'" in daemon.ctl("check", "--job", "nope").stderr
    daemon.stop()
    down = daemon.ctl("check")
    assert down.returncode == 3 and "cannot reach the daemon" in down.stderr


def test_stale_fires_once_survives_a_restart_and_shows_in_status(tmp_path, start_daemon):
    daemon = started(tmp_path, start_daemon)
    wait_for(lambda: alerts(tmp_path) == ["stale stale"], what="on_failure with category stale")
    assert any(line.get("message") == "job is stale" and line.get("level") == "ERROR" for line in daemon.log_lines())
    status = daemon.ctl("status").stdout
    assert "WARNING stale: last success 1d6h ago, past its alert_after of 1d2h" in status
    assert re.search(r"^fresh: last success \d+s ago$", status, re.M)
    daemon.stop()
    (tmp_path / "backupd.prom").unlink()
    daemon.start()
    wait_for(lambda: stale_in_metrics(tmp_path, "1.0"), what="the first refresh after the restart")
    assert alerts(tmp_path) == ["stale stale"]                        # the episode is remembered
    daemon.ctl("trigger", "stale", "--wait", check=True)
    wait_for(lambda: stale_in_metrics(tmp_path, "0.0"), what="the success to end the episode")
    assert daemon.ctl("check", "--job", "stale").returncode == 0
