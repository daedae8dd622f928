"""The python source in the real daemon: every failure is one line of category `source` and the next run
succeeds; a child that leaks or dies leaves the daemon's memory and health untouched; a stop kills the child
and records the run interrupted; a large table streams through with the daemon's memory flat."""
from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import textwrap

import pytest

from backupd.client import BackupFailed, Client
from tests.configs import job, write_config
from tests.e2e.proc_memory import MiB_KIB, memory_kib, reset_peak
from tests.sources.test_command import process_alive
from tests.waiting import wait_for

APP = """
    import os, signal, time
    from pathlib import Path

    MODE = Path(os.environ["APP_MODE"]).read_text().strip()
    if MODE == "import":
        raise ImportError("the settings module is missing")


    class State:
        def __init__(self):
            if MODE == "factory":
                raise RuntimeError("cannot open the database")
            if MODE == "exit":
                os._exit(3)
            if MODE == "leak":
                self.ballast = b"\\x01" * (500 << 20)      # 500 MiB, every page touched

        def dump(self, folder):
            if MODE == "method":
                return {}["missing"]
            if MODE == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if MODE == "hang":
                Path(os.environ["APP_PID"]).write_text(str(os.getpid()))
                time.sleep(600)
            if MODE.startswith("rows:"):
                count = int(MODE[5:])
                return {"items": ([i, f"item number {i}", "x" * 40, i * 0.25, None] for i in range(count))}
            (folder / "mode.txt").write_text(MODE)
"""

FAILURES = [
    ("import", "cannot import app_state with "),
    ("factory", "the factory app_state:State raised RuntimeError: cannot open the database (at "),
    ("method", "State.dump raised KeyError: 'missing' (at "),
    ("kill", "was killed by signal 9 (SIGKILL); out of memory?"),
    ("exit", "exited with code 3"),
    ("hang", "timed out after 3s"),
]


@pytest.fixture
def app_daemon(tmp_path, start_daemon):
    """A daemon whose one job backs up the application in tmp_path/app; returns (daemon, client, set_mode)."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "app_state.py").write_text(textwrap.dedent(APP))
    mode = tmp_path / "mode"
    mode.write_text("ok")
    source = {"type": "python", "factory": "app_state:State", "path": [str(app)], "timeout": "3s",
              "env": {"APP_MODE": str(mode), "APP_PID": str(tmp_path / "child.pid")}}
    config = write_config(tmp_path, jobs={"main": job(["app"])}, sources={"app": source},
                          daemon={"stop_timeout": "20s"})
    daemon = start_daemon(config)
    return daemon, Client(daemon.socket, timeout=60), mode.write_text


def failed_run(client: Client):
    with pytest.raises(BackupFailed) as caught:
        client.trigger(wait=True)
    return caught.value.record


def test_each_failure_is_one_source_line_and_the_next_run_succeeds(app_daemon):
    daemon, client, set_mode = app_daemon
    for mode, expected in FAILURES:
        set_mode(mode)
        record = failed_run(client)
        assert record.error.category == "source", record
        message = record.error.message
        assert message.startswith("source 'app': ") and expected in message and "\n" not in message, message
        assert client.status().pid == daemon.proc.pid           # the daemon keeps serving
        set_mode("ok")
        assert client.trigger(wait=True).ok                      # and the next run succeeds
    assert "ImportError: the settings module is missing" in client.history(limit=12)[-1].error.message


def test_a_leaking_or_exiting_factory_leaves_the_daemon_untouched(app_daemon):
    daemon, client, set_mode = app_daemon
    assert client.trigger(wait=True).ok                          # warm: every module a run needs is loaded
    before = memory_kib(daemon.proc.pid)
    peak_resettable = reset_peak(daemon.proc.pid)
    set_mode("leak")
    assert client.trigger(wait=True).ok                          # the child held 500 MiB; the run is fine
    set_mode("exit")
    assert "exited with code 3" in failed_run(client).error.message
    after = memory_kib(daemon.proc.pid)
    print(f"\ndaemon RSS {before['VmRSS'] / MiB_KIB:.1f} MiB before, {after['VmRSS'] / MiB_KIB:.1f} MiB after, "
          f"peak {after['VmHWM'] / MiB_KIB:.1f} MiB (reset before the leak: {peak_resettable})")
    assert after["VmRSS"] - before["VmRSS"] < 32 * MiB_KIB
    if peak_resettable:
        assert after["VmHWM"] - before["VmRSS"] < 32 * MiB_KIB
    set_mode("ok")
    assert client.trigger(wait=True).ok and client.status().status_text.startswith("idle")


def test_stopping_the_daemon_kills_the_child_and_records_the_run_interrupted(app_daemon, tmp_path):
    daemon, client, set_mode = app_daemon
    set_mode("hang")
    run_id = client.trigger().run_id
    pid_file = tmp_path / "child.pid"
    wait_for(pid_file.exists, "the child to start dumping")
    child = int(pid_file.read_text())
    assert daemon.stop(signal.SIGTERM) == 0
    assert not process_alive(child)
    daemon.start()
    record = Client(daemon.socket).history(limit=1)[0]
    assert (record.run_id, record.status) == (run_id, "interrupted")


def test_a_large_table_streams_with_the_daemon_memory_flat(app_daemon, tmp_path):
    daemon, client, set_mode = app_daemon
    set_mode("rows:1000")
    assert client.trigger(wait=True).ok
    before = memory_kib(daemon.proc.pid)
    reset_peak(daemon.proc.pid)
    rows = 200_000
    set_mode(f"rows:{rows}")
    record = client.trigger(wait=True)
    after = memory_kib(daemon.proc.pid)
    grew = (after["VmHWM"] - before["VmRSS"]) / MiB_KIB
    print(f"\n{rows} rows, {record.archive.bytes_in / 2**20:.1f} MiB of CSV: daemon RSS "
          f"{before['VmRSS'] / MiB_KIB:.1f} MiB before, peak {after['VmHWM'] / MiB_KIB:.1f} MiB (+{grew:.1f})")
    assert grew < 32        # holding the rows would take about 60 MiB (300 bytes a row)
    archive = tmp_path / "archives" / record.archive_name
    table = subprocess.run(f"zstd -dc {archive} | tar -xO app/items.csv", shell=True, capture_output=True,
                           check=True).stdout.decode("utf-8")
    parsed = list(csv.reader(io.StringIO(table, newline="")))
    assert len(parsed) == rows and parsed[-1] == [str(rows - 1), f"item number {rows - 1}", "x" * 40,
                                                  str((rows - 1) * 0.25), ""]
    assert os.path.getsize(archive) == record.size
