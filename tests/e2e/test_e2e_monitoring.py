"""A real daemon tells the outside world: its metrics file after a success, a failure and a reload; hooks and
pings for each way a run ends; a slow ping server never holds a run up."""
from __future__ import annotations

from tests.configs import job
from tests.e2e.watched import ENV_APPEND, ENV_DUMP, appended, break_destination, config, dumped, metric, wait_metric
from tests.fakes.ping_server import PingServer
from tests.waiting import wait_for


def test_metrics_file_after_start_a_success_a_failure_and_a_reload(tmp_path, start_daemon):
    path = config(tmp_path)
    daemon = start_daemon(path)
    wait_metric(tmp_path, 0, "backupd_runs_total", job="main", status="success")       # written at start
    assert metric(tmp_path, "backupd_up") == 1 and metric(tmp_path, "backupd_next_run_timestamp_seconds", job="main")
    record = daemon.ctl_json("trigger", "--wait")
    wait_metric(tmp_path, 1, "backupd_runs_total", job="main", status="success")
    assert metric(tmp_path, "backupd_last_archive_bytes", job="main") == record["archive"]["size"]
    assert metric(tmp_path, "backupd_destination_backups", job="main", destination="local") == 1
    break_destination(tmp_path)
    failed = daemon.ctl_json("trigger", "--wait", expect_rc=1)
    assert (failed["status"], failed["error"]["category"]) == ("failed", "destination")
    wait_metric(tmp_path, 1, "backupd_last_run_status", job="main", status="failed")
    assert metric(tmp_path, "backupd_last_run_status", job="main", status="success") == 0
    assert metric(tmp_path, "backupd_pending_uploads", job="main", destination="local") == 1
    assert metric(tmp_path, "backupd_spool_bytes") == failed["archive"]["size"]
    config(tmp_path, jobs={"main": job(["files"]), "second": job(["files"])})
    daemon.ctl("reload", check=True)
    wait_metric(tmp_path, 0, "backupd_runs_total", job="second", status="failed")       # rewritten at reload
    assert not list((tmp_path / "metrics").glob("*.prom.*"))                           # no temporary file left


def test_a_success_sends_start_and_success_pings_and_runs_its_hooks(tmp_path, start_daemon):
    with PingServer() as server:
        daemon = start_daemon(config(tmp_path, ping_url=server.url, on_start=[*ENV_DUMP, str(tmp_path / "start")],
                                     on_success=[*ENV_DUMP, str(tmp_path / "success")]))
        record = daemon.ctl_json("trigger", "--wait")
        wait_for(lambda: len(server.pings) == 2 and (tmp_path / "success").exists(), what="both pings, both hooks")
    assert server.paths() == [server.path + "/start", server.path]
    assert record["archive"]["name"] in server.pings[1][2]
    env = dumped(tmp_path / "success")
    assert (env["BACKUPD_RUN_ID"], env["BACKUPD_STATUS"], env["BACKUPD_ARCHIVE"], env["BACKUPD_SIZE"]) == (
        record["run_id"], "success", record["archive"]["name"], str(record["archive"]["size"]))
    assert dumped(tmp_path / "start")["BACKUPD_STATUS"] == "running"


def test_an_unreachable_destination_fires_on_failure_and_fail_with_the_error(tmp_path, start_daemon):
    with PingServer() as server:
        daemon = start_daemon(config(tmp_path, ping_url=server.url, on_failure=[*ENV_DUMP, str(tmp_path / "fail")]))
        break_destination(tmp_path)
        failed = daemon.ctl_json("trigger", "--wait", expect_rc=1)
        wait_for(lambda: len(server.pings) == 2 and (tmp_path / "fail").exists(), what="the /fail ping and hook")
    assert server.paths()[1] == server.path + "/fail"
    assert server.pings[1][2] == f"failed: {failed['error']['message']}" and "destination 'local'" in server.pings[1][2]
    env = dumped(tmp_path / "fail")
    assert (env["BACKUPD_STATUS"], env["BACKUPD_ERROR_CATEGORY"]) == ("failed", "destination")
    assert env["BACKUPD_ARCHIVE"] == failed["archive"]["name"]          # it waits in the spool


def test_a_run_that_fails_before_any_archive_fires_on_failure(tmp_path, start_daemon):
    daemon = start_daemon(config(tmp_path, on_failure=[*ENV_DUMP, str(tmp_path / "fail")]))
    (tmp_path / "data").rename(tmp_path / "data.gone")                  # the source is missing
    failed = daemon.ctl_json("trigger", "--wait", expect_rc=1)
    env = wait_for(lambda: (tmp_path / "fail").exists() and dumped(tmp_path / "fail"), what="the on_failure hook")
    assert (env["BACKUPD_ERROR_CATEGORY"], env["BACKUPD_ARCHIVE"]) == (failed["error"]["category"], "")
    assert failed["error"]["category"] == "source"


def test_a_failing_hook_and_a_slow_ping_server_leave_the_run_alone(tmp_path, start_daemon):
    with PingServer() as server:
        server.release.clear()                                          # the server holds every request
        daemon = start_daemon(config(tmp_path, ping_url=server.url, on_start=["sh", "-c", "exit 1"],
                                     on_success=["sh", "-c", "exit 1"]))
        record = daemon.ctl_json("trigger", "--wait")
        assert record["status"] == "success"                            # a hook that exits 1 changes nothing
        assert server.paths() in ([], [server.path + "/start"])         # its /start still held: not waited for
        server.release.set()
        wait_for(lambda: len(server.pings) == 2, what="the held pings to go through once released")
    def failed_hooks():
        found = [line for line in daemon.log_lines() if line.get("message") == "hook failed; the run's result stands"]
        return found if len(found) == 2 else None
    logged = wait_for(failed_hooks, what="both hooks' failures logged")
    assert [(line["hook"], line["exit_code"]) for line in logged] == [("on_start", 1), ("on_success", 1)]


def test_hooks_say_what_started_the_run_upload_pending_included(tmp_path, start_daemon):
    with PingServer() as server:
        daemon = start_daemon(config(tmp_path, ping_url=server.url, on_start=[*ENV_APPEND, str(tmp_path / "start")],
                                     on_success=[*ENV_APPEND, str(tmp_path / "end")],
                                     on_failure=[*ENV_APPEND, str(tmp_path / "end")]))
        break_destination(tmp_path)
        failed = daemon.ctl_json("trigger", "--wait", expect_rc=1)          # its archive waits in the spool
        (tmp_path / "archives").unlink()
        retried = daemon.ctl_json("trigger", "--wait", "--upload-pending")
        wait_for(lambda: len(server.pings) == 4 and len(appended(tmp_path / "end")) == 2, what="both runs' ends")
    assert retried["status"] == "success" and f"pending from run {failed['run_id']}" in server.pings[3][2]
    starts, ends = appended(tmp_path / "start"), appended(tmp_path / "end")
    assert [env["BACKUPD_TRIGGER"] for env in starts] == ["manual", "upload-pending"]
    assert [(env["BACKUPD_TRIGGER"], env["BACKUPD_STATUS"]) for env in ends] == [
        ("manual", "failed"), ("upload-pending", "success")]
    assert ends[1]["BACKUPD_RUN_ID"] == retried["run_id"]
