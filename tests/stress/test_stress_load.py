"""Load: 200 concurrent `backupctl trigger` processes start exactly one run and all get its run id; 1,000 `status`
requests from 50 concurrent clients during a backup are all answered (p50/p99 reported); the daemon's peak RSS
stays within 100 MiB. The run is held open by a command source that waits for a gate file the test removes."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.configs import command_source, directory_source, job, write_config
from tests.stress import probes
from tests.waiting import wait_for

BACKUPCTL = Path(sys.executable).parent / "backupctl"
TRIGGERS = 200
STATUS_CLIENTS, STATUS_EACH = 50, 20
MAX_RSS = 100 << 20


@pytest.fixture
def gated(tmp_path, daemons):
    """A daemon whose run stays in its source until the gate file is removed; (daemon, gate)."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    data.mkdir()
    for index in range(50):
        (data / f"f{index}.txt").write_text("x" * 4000)
    sources = {"files": directory_source(data),
               "held": command_source(["sh", "-c", f"while [ -e '{gate}' ]; do sleep 0.05; done; echo released"])}
    config = write_config(tmp_path, sources=sources, jobs={"main": job(["files", "held"])})
    return daemons(config), gate


def test_200_concurrent_triggers_start_one_run_and_all_get_its_id(gated, figures):
    daemon, gate = gated
    gate.touch()
    started = time.monotonic()
    procs = [subprocess.Popen([str(BACKUPCTL), "--socket", str(daemon.socket), "--json", "trigger"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(TRIGGERS)]
    answers = [(proc.wait(120), *proc.communicate()) for proc in procs]
    wall = time.monotonic() - started
    failed = [(code, err.strip()[:120]) for code, _, err in answers if code != 0]
    assert failed == []
    replies = [json.loads(out) for _, out, _ in answers]
    run_ids = {reply["run_id"] for reply in replies}
    assert len(run_ids) == 1 and sum(reply["started"] for reply in replies) == 1, run_ids
    gate.unlink()
    record = probes.call(daemon.socket, "trigger", timeout=60, wait=True)   # joins the one run, still going
    assert record["run_id"] in run_ids and record["status"] == "success", record
    assert [r["run_id"] for r in probes.call(daemon.socket, "history", limit=1000)["runs"]] == list(run_ids)
    rss = probes.peak_rss(daemon.proc.pid)
    figures(triggers=TRIGGERS, answered=len(replies), runs=len(run_ids), wall_s=round(wall, 1),
            peak_rss_mib=round(rss / 2**20, 1))
    assert rss <= MAX_RSS


def test_1000_status_requests_from_50_clients_during_a_backup_are_all_answered(gated, figures):
    daemon, gate = gated
    gate.touch()
    run_id = probes.call(daemon.socket, "trigger")["run_id"]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(STATUS_EACH):
            start = time.perf_counter()
            try:
                status = probes.call(daemon.socket, "status")
                assert status["jobs"][0]["running"]["run_id"] == run_id
            except Exception as exc:   # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:120])
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(STATUS_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    gate.unlink()
    assert errors == [] and len(latencies) == STATUS_CLIENTS * STATUS_EACH
    wait_for(lambda: probes.call(daemon.socket, "status")["jobs"][0]["running"] is None, "the run to end", 60)
    p50, p99 = probes.percentiles(latencies)
    rss = probes.peak_rss(daemon.proc.pid)
    figures(requests=len(latencies), clients=STATUS_CLIENTS, p50_ms=round(p50 * 1000, 1),
            p99_ms=round(p99 * 1000, 1), max_ms=round(max(latencies) * 1000, 1), peak_rss_mib=round(rss / 2**20, 1))
    assert rss <= MAX_RSS
