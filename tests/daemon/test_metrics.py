"""The metrics file, from a real audit trail and spool: every series with its labels, parsed back with
prometheus_client's own parser; replaced atomically while a reader polls it."""
from __future__ import annotations

import os
import stat
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from backupd import __version__, config as config_module
from backupd.daemon import metrics
from backupd.jobs.history import History
from backupd.jobs.result import Status
from backupd.jobs.spool import Spool
from backupd.jobs.verify_record import VerifyRecord, VerifyStatus
from tests.configs import job, write_config
from tests.jobs.records import saved_run
from tests.waiting import wait_for

NEXT = datetime(2030, 1, 2, 3, 0, tzinfo=timezone.utc)
VERIFIED = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)     # whole seconds: the trail keeps no fractions
FAMILIES = {"backupd_up", "backupd_info", "backupd_last_run_timestamp_seconds",
            "backupd_last_success_timestamp_seconds", "backupd_last_run_status", "backupd_last_run_duration_seconds",
            "backupd_last_archive_bytes", "backupd_runs", "backupd_next_run_timestamp_seconds",
            "backupd_destination_backups", "backupd_destination_bytes", "backupd_spool_bytes",
            "backupd_pending_uploads", "backupd_job_stale", "backupd_last_verify_timestamp_seconds",
            "backupd_last_verify_ok", "backupd_last_set_bytes", "backupd_last_backup_kind"}


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value of every sample in the exposition text."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def setup(tmp_path: Path):
    path = write_config(tmp_path, jobs={"daily": job(["files"], ["local", "drive"]), "never": job(["files"])},
                        destinations={"local": {"type": "local", "path": str(tmp_path / "archives")},
                                      "drive": {"type": "local", "path": str(tmp_path / "drive")}})
    config = config_module.load(path)
    history = History(config.daemon.state_dir)
    state = metrics.State(config=config, history=history, next_run=lambda name: NEXT if name == "daily" else None)
    return config, history, state


def test_series_after_a_success_and_a_failure(tmp_path):
    config, history, state = setup(tmp_path)
    good = saved_run(history, "daily", ago=timedelta(hours=5), size=3000, destinations=("local", "drive"))
    bad = saved_run(history, "daily", Status.FAILED, ago=timedelta(hours=1), size=500, destinations=("drive",))
    history.add_pending(bad.archive.name, "drive", "daily", bad.run_id, {"created": "x"})
    spool = Spool(config.daemon.state_dir)
    spool.final_path(bad.archive.name).parent.mkdir(parents=True, exist_ok=True)
    spool.final_path(bad.archive.name).write_bytes(b"z" * 500)
    out = tmp_path / "backupd.prom"
    metrics.write(out, state)
    found = samples(out.read_text())
    daily, never = (("job", "daily"),), (("job", "never"),)
    assert found[("backupd_up", ())] == 1
    assert found[("backupd_info", (("version", __version__),))] == 1
    assert found[("backupd_last_run_timestamp_seconds", daily)] == bad.ended.timestamp()
    assert found[("backupd_last_success_timestamp_seconds", daily)] == good.ended.timestamp()
    assert found[("backupd_last_success_timestamp_seconds", never)] == 0        # never: alerts see it as old
    assert found[("backupd_last_run_duration_seconds", daily)] == 42
    assert found[("backupd_last_archive_bytes", daily)] == 3000
    assert found[("backupd_next_run_timestamp_seconds", daily)] == NEXT.timestamp()
    assert ("backupd_next_run_timestamp_seconds", never) not in found
    status = {s: found[("backupd_last_run_status", (("job", "daily"), ("status", s)))] for s in metrics.ENDED}
    assert status == {"success": 0, "failed": 1, "interrupted": 0}
    assert found[("backupd_runs_total", (("job", "daily"), ("status", "failed")))] == 1
    assert found[("backupd_runs_total", (("job", "never"), ("status", "success")))] == 0
    at = {dest: (found[("backupd_destination_backups", (("destination", dest), ("job", "daily")))],
                 found[("backupd_destination_bytes", (("destination", dest), ("job", "daily")))])
          for dest in ("local", "drive")}
    assert at == {"local": (1, 3000), "drive": (1, 3000)}                      # the failed run's archive waits
    assert found[("backupd_pending_uploads", (("destination", "drive"), ("job", "daily")))] == 1
    assert found[("backupd_spool_bytes", ())] == 500
    assert found[("backupd_job_stale", daily)] == 0


def test_a_pruned_backup_and_a_later_upload_are_counted_as_they_are(tmp_path):
    config, history, state = setup(tmp_path)
    first = saved_run(history, "daily", ago=timedelta(days=2), destinations=("local",))
    late = saved_run(history, "daily", Status.FAILED, ago=timedelta(days=1), destinations=("drive",))  # uploaded since
    history.record_deletion(first.archive.name, "local", "daily", "test", "keep_last 1")
    assert metrics.stored(history) == {("daily", "drive"): [1, 1000]}
    assert late.archive.name not in {item["archive"] for item in history.pending()}


def test_a_reader_polling_during_50_writes_never_sees_a_partial_file(tmp_path):
    config, history, state = setup(tmp_path)
    out = tmp_path / "backupd.prom"
    metrics.write(out, state)
    seen, problems, done = [], [], threading.Event()

    def read_once():
        text = out.read_text()
        try:
            names = {family.name for family in text_string_to_metric_families(text)}
        except ValueError as exc:
            problems.append(f"unparsable: {exc}")
            return
        if names != FAMILIES or not text.endswith("\n"):
            problems.append(f"incomplete: {sorted(FAMILIES - names)}")
        seen.append(samples(text)[("backupd_runs_total", (("job", "daily"), ("status", "success")))])

    def read_all_the_time():
        while not done.is_set():
            read_once()
        read_once()              # once more after the writer said it was done: this one sees the last write

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        wait_for(lambda: seen or problems, what="the reader's first read")     # it polls before the writes begin
        for count in range(1, 51):
            saved_run(history, "daily", ago=timedelta(minutes=count))
            metrics.write(out, state)
    finally:
        done.set()
        reader.join()
    assert not problems, problems[:3]
    assert seen and seen == sorted(seen) and max(seen) == 50          # it saw the writes go by, in order
    assert (seen[0], seen[-1]) == (0, 50)          # from before the first write to the last one's content
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("backupd.prom")] == ["backupd.prom"]


def test_the_file_is_readable_by_node_exporter_under_the_units_umask(tmp_path):
    _, _, state = setup(tmp_path)
    out = tmp_path / "backupd.prom"
    previous = os.umask(0o077)       # the unit's UMask=
    try:
        metrics.write(out, state)
        metrics.write(out, state)    # a replacement too
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("backupd.prom")] == ["backupd.prom"]


def test_the_newest_verdict_of_each_destination_is_its_last_verify(tmp_path):
    _, history, state = setup(tmp_path)
    verdicts = [("local", VerifyStatus.SUCCESS, 3), ("drive", VerifyStatus.SUCCESS, 3),
                ("drive", VerifyStatus.FAILED, 3),        # the same second: the one recorded later counts
                ("local", VerifyStatus.ERROR, 1)]         # an error (it could not finish) says nothing
    when = {}
    for destination, status, hours in verdicts:
        record = VerifyRecord(job="daily", archive="a.tar.zst", destination=destination, run_id="r", trigger="schedule",
                              started=VERIFIED - timedelta(hours=hours)).finish(status, ["bad"])
        record.ended = record.started + timedelta(seconds=30)
        history.save_verification(record)
        when.setdefault(destination, {})[status] = record.ended.timestamp()
    out = tmp_path / "backupd.prom"
    metrics.write(out, state)
    found = samples(out.read_text())
    local, drive = (("destination", "local"), ("job", "daily")), (("destination", "drive"), ("job", "daily"))
    assert found[("backupd_last_verify_ok", local)] == 1 and found[("backupd_last_verify_ok", drive)] == 0
    assert found[("backupd_last_verify_timestamp_seconds", local)] == when["local"][VerifyStatus.SUCCESS]
    assert found[("backupd_last_verify_timestamp_seconds", drive)] == when["drive"][VerifyStatus.FAILED]


def test_the_newest_backups_kind_and_its_sets_size(tmp_path):
    config, history, state = setup(tmp_path)
    full = saved_run(history, "daily", ago=timedelta(days=2), size=3000)
    diff = saved_run(history, "daily", ago=timedelta(days=1), size=400)
    diff.archive.kind, diff.archive.base, diff.archive.set_size = "differential", full.archive.name, 3400
    history.save(diff)
    saved_run(history, "daily", Status.FAILED, ago=timedelta(hours=1), size=9000)     # no success: not counted
    old = saved_run(history, "never", ago=timedelta(days=3), size=700)               # a record without set_size
    assert old.archive.set_size == 0
    out = tmp_path / "backupd.prom"
    metrics.write(out, state)
    found = samples(out.read_text())
    assert found[("backupd_last_set_bytes", (("job", "daily"),))] == 3400
    assert found[("backupd_last_archive_bytes", (("job", "daily"),))] == 400
    assert found[("backupd_last_set_bytes", (("job", "never"),))] == 700            # a full alone: its size
    kinds = {(job, kind): found[("backupd_last_backup_kind", (("job", job), ("kind", kind)))]
             for job in ("daily", "never") for kind in metrics.KINDS}
    assert kinds == {("daily", "full"): 0, ("daily", "differential"): 1, ("never", "full"): 1,
                     ("never", "differential"): 0}


def test_a_job_without_a_success_has_no_kind_or_set_series(tmp_path):
    _, history, state = setup(tmp_path)
    saved_run(history, "daily", Status.FAILED, size=500)
    found = samples(_written(tmp_path, state))
    assert not [key for key in found if key[0] in ("backupd_last_set_bytes", "backupd_last_backup_kind")]


def _written(tmp_path: Path, state) -> str:
    out = tmp_path / "backupd.prom"
    metrics.write(out, state)
    return out.read_text()
