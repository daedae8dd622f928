"""The real daemon prunes after a successful run and on `backupctl prune`; `status` shows what waits in the spool
and why; a reload lets the next run retry an upload that failed permanently."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from tests.configs import directory_source, job, local_destination, write_config
from tests.jobs.plant import at_local

KEEP = {"daily": 3}


def setup(tmp_path, days: int = 6, keep=KEEP):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("content")
    today = datetime.now(timezone.utc).replace(hour=0, minute=30, second=0, microsecond=0)
    planted = [at_local(tmp_path / "archives", "main", today - timedelta(days=n)) for n in range(1, days + 1)]
    path = write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")},
                        destinations={"local": local_destination(tmp_path / "archives")},
                        jobs={"main": job(["files"], keep=keep)})
    return path, planted


def held(tmp_path) -> list[str]:
    return sorted((p.name for p in (tmp_path / "archives").glob("*.tar.zst")), reverse=True)


def test_prune_dry_run_shows_the_plan_and_removes_nothing_then_prune_removes(tmp_path, start_daemon):
    path, planted = setup(tmp_path)
    daemon = start_daemon(path)
    dry = daemon.ctl("prune", "--dry-run", check=True).stdout.splitlines()
    assert dry[0] == "job main at local (keep 3 daily): 3 kept, 3 would be removed"
    assert [line.split()[:1] + line.split()[4:5] for line in dry[1:]] == (
        [["keep", name] for name in planted[:3]] + [["remove", name] for name in planted[3:]])
    assert dry[1].endswith("(newest successful, daily " + dry[1].split()[1] + ")")
    assert held(tmp_path) == planted
    done = daemon.ctl_json("prune", "--job", "main", "--destination", "local")
    assert done["plans"][0]["removed"] == planted[:2:-1] and done["plans"][0]["error"] == ""
    assert held(tmp_path) == planted[:3]
    logged = [line for line in daemon.log_lines() if line.get("message") == "backup pruned"]
    assert [(line["archive"], line["by"]) for line in logged] == [
        (name, f"backupctl prune (uid {os.getuid()})") for name in planted[:2:-1]]
    refused = daemon.ctl("prune", "--destination", "nowhere")
    assert refused.returncode == 1 and "no job here (main) stores on a destination named 'nowhere'" in refused.stderr


def test_a_successful_run_prunes_and_a_failed_one_does_not(tmp_path, start_daemon):
    path, planted = setup(tmp_path)
    daemon = start_daemon(path)
    record = daemon.ctl_json("trigger", "--wait")
    assert record["status"] == "success"
    assert held(tmp_path) == [record["archive"]["name"], *planted[:2]]      # today, and the two days before
    (tmp_path / "data" / "f.txt").unlink()
    (tmp_path / "data").rmdir()
    assert daemon.ctl_json("trigger", "--wait", expect_rc=1)["status"] == "failed"
    assert held(tmp_path) == [record["archive"]["name"], *planted[:2]]


def test_status_says_why_an_upload_waits_and_a_reload_lets_the_next_run_retry_it(tmp_path, start_daemon):
    path, _ = setup(tmp_path, days=0, keep={})       # keep everything: this test counts what arrives
    (tmp_path / "archives").write_text("a file where the destination folder should be")
    daemon = start_daemon(path)
    failed = daemon.ctl_json("trigger", "--wait", expect_rc=1)
    name = failed["archive"]["name"]
    spool = daemon.ctl_json("status")["spool"]
    assert spool["bytes"] == failed["archive"]["size"] and spool["max"] > 0
    assert [a["archive"] for a in spool["archives"]] == [name] and spool["archives"][0]["destinations"][0]["held"]
    shown = daemon.ctl("status", check=True).stdout
    assert f"  {name}  " in shown and "-> local: failed permanently (local destination 'local': cannot write" in shown
    (tmp_path / "archives").unlink()
    again = daemon.ctl_json("trigger", "--wait")
    assert [d["name"] for d in again["destinations"]] == ["local"]          # held: not retried by a run
    daemon.ctl("reload", check=True)
    assert daemon.ctl_json("status")["spool"]["archives"][0]["destinations"][0]["why"] == "retried at the next run"
    third = daemon.ctl_json("trigger", "--wait")
    assert f"local (pending from run {failed['run_id']})" in [d["name"] for d in third["destinations"]]
    assert (tmp_path / "archives" / name).exists() and daemon.ctl_json("status")["spool"]["archives"] == []
