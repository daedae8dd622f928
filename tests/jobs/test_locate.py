"""Which backup a BACKUP argument names: from the audit trail, else from the destinations' listings; where
to fetch it (the destination asked for, else the ones that hold it, local before remote)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from backupd.config import load
from backupd.destinations.base import StoredBackup
from backupd.jobs.locate import LocateError, locate, open_fetch
from backupd.jobs.result import ArchiveInfo, DestinationResult, RunRecord, utc_now
from tests.configs import directory_source, job, local_destination, write_config

START = utc_now() - timedelta(days=3)


@pytest.fixture
def config(tmp_path):
    drive = {"type": "gdrive", "credentials": str(tmp_path / "sa.json"), "folder": "b"}
    return load(write_config(
        tmp_path, sources={"files": directory_source(tmp_path / "data")},
        destinations={"drive": drive, "disk": local_destination(tmp_path / "disk"),
                      "other": local_destination(tmp_path / "other")},
        jobs={"daily": job(["files"], ["drive", "disk"]), "hourly": job(["files"], ["disk"])}))


def run(run_id: str, job_name: str, hours: int, held=("drive", "disk"), failed=()) -> RunRecord:
    name = f"{job_name}-host-{run_id}.tar.zst"
    results = [DestinationResult(n, "success") for n in held] + [DestinationResult(n, "failed") for n in failed]
    return RunRecord(run_id=run_id, job=job_name, trigger="schedule", status="success", started=START +
                     timedelta(hours=hours), archive=ArchiveInfo(name=name, size=100 + hours, sha256=f"{hours:064x}"),
                     destinations=results)


RUNS = sorted([run("aaaaaaaa0001", "daily", 1), run("aaaaaaaa0002", "daily", 25), run("bbbbbbbb0003", "hourly", 26,
              held=("disk",)), run("cccccccc0004", "daily", 27, held=(), failed=("drive", "disk"))],
              key=lambda r: r.started, reverse=True)


def nothing_listed():
    raise AssertionError("the trail knew the backup: the destinations are not asked")


def test_latest_of_a_job_skips_runs_stored_nowhere_and_tries_local_first(config):
    found = locate("latest:daily", config, RUNS, nothing_listed)
    assert (found.run_id, found.destinations) == ("aaaaaaaa0002", ("disk", "drive"))
    assert (found.sha256, found.size) == (f"{25:064x}", 125)


def test_plain_latest_needs_a_job_when_several_have_backups(config):
    with pytest.raises(LocateError,
                       match=r"latest is ambiguous: 2 jobs have backups \(daily, hourly\); say latest:JOB"):
        locate("latest", config, RUNS, nothing_listed)
    assert locate("latest", config, [r for r in RUNS if r.job == "daily"], nothing_listed).run_id == "aaaaaaaa0002"


def test_run_id_prefix_archive_name_and_ambiguity(config):
    assert locate("bbbbbbbb", config, RUNS, nothing_listed).job == "hourly"
    assert locate("AAAAAAAA0001", config, RUNS, nothing_listed).run_id == "aaaaaaaa0001"
    assert locate("daily-host-aaaaaaaa0001.tar.zst", config, RUNS, nothing_listed).run_id == "aaaaaaaa0001"
    with pytest.raises(LocateError, match=r"'aaaaaaaa' names 2 backups .*; give more of the run id"):
        locate("aaaaaaaa", config, RUNS, nothing_listed)
    with pytest.raises(LocateError, match="at least 8 characters"):
        locate("bbbbbbb", config, RUNS, nothing_listed)


@pytest.mark.parametrize("text, message", [
    ("yesterday", "'yesterday' is not a backup"),
    ("latest:weekly", "no job named 'weekly'; jobs: daily, hourly"),
])
def test_bad_names_say_what_is_expected(config, text, message):
    with pytest.raises(LocateError, match=message):
        locate(text, config, RUNS, nothing_listed)


def test_a_destination_asked_for_is_the_only_one_tried(config):
    assert locate("latest:daily", config, RUNS, nothing_listed, destination="drive").destinations == ("drive",)
    assert locate("latest:daily", config, RUNS, nothing_listed, destination="other").destinations == ("other",)
    with pytest.raises(LocateError, match="no destination named 'nas'; destinations: drive, disk, other"):
        locate("latest", config, RUNS, nothing_listed, destination="nas")


def test_without_a_trail_the_destinations_listings_are_used(config):
    def listed():
        backup = lambda name, run_id, created: StoredBackup(name=name, size=7, location="x", job="daily",
                                                            run_id=run_id, sha256="ab" * 32, created=created)
        yield "drive", [backup("daily-2.tar.zst", "r2", "2024-01-02T00:00:00Z"),
                        backup("daily-1.tar.zst", "r1", "2024-01-01T00:00:00Z")]
        yield "disk", [backup("daily-1.tar.zst", "r1", "2024-01-01T00:00:00Z")]
    found = locate("latest:daily", config, None, listed)
    assert (found.name, found.destinations, found.sha256, found.size) == ("daily-2.tar.zst", ("drive",), "ab" * 32, 7)
    assert locate("daily-1.tar.zst", config, [], listed).destinations == ("disk", "drive")
    with pytest.raises(LocateError, match="no backup 'daily-9.tar.zst' found in the history or at the destinations"):
        locate("daily-9.tar.zst", config, None, listed)


def test_open_fetch_takes_the_first_destination_that_has_it(config, tmp_path):
    found = locate("aaaaaaaa0001", config, RUNS, nothing_listed)
    found = type(found)(found.name, found.job, found.run_id, found.sha256, found.size, ("disk", "other"))
    with pytest.raises(LocateError, match=r"no destination could give daily-host-aaaaaaaa0001.tar.zst \(disk: not "
                                          r"there; other: not there\)"):
        open_fetch(found, config, tmp_path / "state")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / found.name).write_bytes(b"stored bytes")
    fetched = open_fetch(found, config, tmp_path / "state")
    try:
        assert (fetched.name, b"".join(fetched.chunks)) == ("other", b"stored bytes")
    finally:
        fetched.close()
