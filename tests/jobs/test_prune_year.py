"""A year of daily backups pruned by `keep = { daily = 7, weekly = 4, monthly = 12 }`: exactly the expected 20
remain, at the real local destination and on the loopback Drive (the backups are placed with chosen creation
times; the real prune action lists, decides and deletes)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backupd.config import LocalDestinationConfig
from backupd.config.keep import KeepPolicy
from backupd.destinations.gdrive.destination import DriveDestination
from backupd.jobs.actions.prune import prune_one
from tests.destinations.helpers import gdrive_config
from tests.fakes.drive import DriveServer
from tests.jobs.plant import at_local, context, on_drive

POLICY = KeepPolicy(daily=7, weekly=4, monthly=12)
FIRST = datetime(2026, 1, 1, 3, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 12, 31, 3, 5, tzinfo=timezone.utc)     # just after the last run (a Thursday, ISO 2026-W53)
DAILY = [f"2026-12-{day}" for day in range(31, 24, -1)]
WEEKLY = ["2026-12-31", "2026-12-27", "2026-12-20", "2026-12-13"]
MONTH_ENDS = ["2026-12-31", "2026-11-30", "2026-10-31", "2026-09-30", "2026-08-31", "2026-07-31", "2026-06-30",
              "2026-05-31", "2026-04-30", "2026-03-31", "2026-02-28", "2026-01-31"]
EXPECTED_DAYS = sorted(set(DAILY + WEEKLY + MONTH_ENDS), reverse=True)


@pytest.fixture
def local(tmp_path):
    """(destination config, place(when) -> name, names it holds) for the local destination."""
    root = tmp_path / "archives"
    return (LocalDestinationConfig(name="local", path=root), lambda when: at_local(root, "daily", when),
            lambda: sorted((p.name for p in root.glob("*.tar.zst")), reverse=True))


@pytest.fixture
def drive(tmp_path):
    with DriveServer() as server:
        credentials = server.write_credentials(tmp_path / "sa.json", server.oauth.service_account())
        config = gdrive_config(server, credentials)
        destination = DriveDestination(config)
        folder = destination.folder_id()
        destination.close()
        yield (config, lambda when: on_drive(server, folder, "daily", when),
               lambda: sorted((f.name for f in server.files.values() if f.parents == [folder]), reverse=True))


@pytest.mark.parametrize("where", ["local", "drive"])
def test_a_year_of_daily_backups_leaves_the_expected_twenty(where, request, tmp_path):
    config, place, held = request.getfixturevalue(where)
    year = {place(when): when for when in (FIRST + timedelta(days=n) for n in range(365))}
    assert len(held()) == 365
    expected = sorted((name for name, when in year.items() if when.date().isoformat() in EXPECTED_DAYS), reverse=True)
    assert len(expected) == 7 + 4 + 12 - 3   # Dec 31 is daily, weekly and monthly; Dec 27 daily and weekly

    dry = prune_one(context(tmp_path, POLICY, NOW, dry_run=True), config)
    plan = dry.to_dict()["plan"]            # what the daemon sends to `backupctl prune --dry-run`
    print("", f"backupctl prune --dry-run ({where}, {POLICY.describe()}):", *plan, sep="\n")
    assert dry.error == "" and dry.removed == [] and len(held()) == 365
    assert len(plan) == 365 and sum(line.startswith("keep") for line in plan) == 20
    assert plan[0] == (f"keep    2026-12-31 03:00:00 UTC  {expected[0]}  "
                       "(newest successful, daily 2026-12-31, weekly 2026-W53, monthly 2026-12)")
    assert [line.split()[4] for line in plan if line.startswith("keep")] == expected

    pruned = prune_one(context(tmp_path, POLICY, NOW), config)
    assert pruned.error == "" and len(pruned.removed) == 345
    assert held() == expected
    assert len(context(tmp_path, POLICY).history.deletions("daily")) == 345
