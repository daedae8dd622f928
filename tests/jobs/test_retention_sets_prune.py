"""Pruning backup sets through the real local destination and the loopback Drive: the sets are told apart from
the listing alone (the history here is empty, as on a reinstalled machine), differentials go before their full,
and the newest differential and its full are never removed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backupd.config import LocalDestinationConfig
from backupd.config.keep import KeepPolicy
from backupd.destinations.base import StoredBackup
from backupd.destinations.gdrive.destination import DriveDestination
from backupd.jobs.actions import prune as prune_action
from backupd.jobs.actions.archive import archive_name, host_name
from backupd.jobs.history import History
from tests.destinations.helpers import gdrive_config
from tests.fakes.drive import DriveServer
from tests.jobs.plant import at_local, context, on_drive

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def run_of(name: str) -> str:
    """The run id prefix in a full's archive name."""
    return name.rsplit("-", 1)[1].removesuffix(".tar.zst")


def a_set(place, first: datetime, differentials: int) -> list[str]:
    """A full at `first`, then one differential against it a day, newest first."""
    base = place(first, "")
    return [place(first + timedelta(days=n), run_of(base)) for n in range(differentials, 0, -1)] + [base]


def local_place(root):
    return lambda when, base_run: at_local(root, "daily", when, base_run_id=base_run)


def prune_local(tmp_path, keep, **kwargs):
    ctx = context(tmp_path, keep, NOW, **kwargs)
    return prune_action.prune_one(ctx, LocalDestinationConfig(name="local", path=tmp_path / "archives")), ctx


def held(root) -> list[str]:
    return sorted((p.name for p in root.glob("*.tar.zst")), key=lambda name: name.split("-")[2], reverse=True)


def test_sets_are_told_apart_from_the_listing_and_differentials_go_before_their_full(tmp_path):
    place = local_place(tmp_path / "archives")
    old = a_set(place, NOW.replace(hour=3) - timedelta(days=13), 6)      # Nov 18 .. Nov 24
    new = a_set(place, NOW.replace(hour=3) - timedelta(days=6), 6)       # Nov 25 .. Dec 1
    plan, ctx = prune_local(tmp_path, KeepPolicy(daily=3))
    assert plan.error == "" and held(tmp_path / "archives") == new[:3] + new[-1:]
    assert plan.removed == old[5::-1] + new[5:2:-1] + old[-1:]      # the differentials first, oldest first
    reasons = {d["archive"]: d["reason"] for d in ctx.history.deletions("daily")}
    assert set(reasons.values()) == {"no rule keeps it (keep 3 daily)"} and set(reasons) == set(plan.removed)
    assert {d.backup.name: d.reason for d in plan.decisions}[new[-1]] == f"full of kept {new[0]} and 2 more"


def test_a_differential_whose_full_is_gone_is_removed_and_says_why(tmp_path):
    place = local_place(tmp_path / "archives")
    kept = a_set(place, NOW.replace(hour=3) - timedelta(days=2), 2)
    stray = place(NOW.replace(hour=3) - timedelta(days=5), "0badf00d")
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=5))
    assert plan.removed == [stray] and held(tmp_path / "archives") == kept
    assert ctx.history.deletions()[0]["reason"] == (
        "its full (run 0badf00d) is not at this destination: cannot be restored here, counts toward no rule "
        "(keep last 5)")


def test_a_full_that_failed_verification_takes_its_differentials_with_it(tmp_path):
    place = local_place(tmp_path / "archives")
    old = a_set(place, NOW.replace(hour=3) - timedelta(days=9), 2)
    new = a_set(place, NOW.replace(hour=3) - timedelta(days=3), 3)
    History(tmp_path / "state").record_check(new[-1], "local", ok=False, detail="sha256 differs")
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    assert held(tmp_path / "archives") == [old[0], old[-1]]
    assert plan.removed == old[1:2] + new[2::-1] + new[-1:]
    reasons = {d["archive"]: d["reason"] for d in ctx.history.deletions()}
    assert reasons[new[0]] == (f"its full {new[-1]} failed verification: cannot be restored, counts toward no rule "
                               "(keep last 1)")
    assert reasons[new[-1]] == "verification failed, counts toward no rule (keep last 1)"


def test_the_newest_differential_and_its_full_stay_even_if_the_policy_said_otherwise(tmp_path, monkeypatch):
    place = local_place(tmp_path / "archives")
    names = a_set(place, NOW.replace(hour=3) - timedelta(days=3), 3)
    real = prune_action.decide

    def keeps_nothing(*args):
        return [prune_action.Decision(d.backup, d.local, (), d.unrestorable) for d in real(*args)]
    monkeypatch.setattr(prune_action, "decide", keeps_nothing)
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    assert plan.error == f"refused to remove {names[0]}: it is the newest successful backup"
    assert held(tmp_path / "archives") == [names[0], names[-1]]
    assert [d["archive"] for d in ctx.history.deletions()] == [names[2], names[1]]


def test_the_dry_run_plan_gives_each_backups_kind_and_a_differentials_full(tmp_path):
    place = local_place(tmp_path / "archives")
    names = a_set(place, NOW.replace(hour=3) - timedelta(days=2), 2)
    plan, _ = prune_local(tmp_path, KeepPolicy(last=1), dry_run=True)
    shown = plan.to_dict()
    assert [line.split()[0] + " " + line.split()[5] for line in shown["plan"]] == ["keep differential",
                                                                                    "remove differential", "keep full"]
    assert all(f"  differential of {names[-1]}  " in line for line in shown["plan"][:2])
    assert [(b["name"], b["kind"], b["base"], b["kept"]) for b in shown["backups"]] == [
        (names[0], "differential", names[-1], True), (names[1], "differential", names[-1], False),
        (names[2], "full", "", True)]
    assert held(tmp_path / "archives") == names


def test_sets_on_the_drive_are_told_apart_from_its_listing(tmp_path):
    with DriveServer() as drive:
        config = gdrive_config(drive, drive.write_credentials(tmp_path / "sa.json", drive.oauth.service_account()))
        planting = DriveDestination(config)
        folder = planting.folder_id()
        planting.close()

        def place(when, base_run):
            return on_drive(drive, folder, "daily", when, base_run_id=base_run)
        old = a_set(place, NOW.replace(hour=3) - timedelta(days=8), 3)
        new = a_set(place, NOW.replace(hour=3) - timedelta(days=3), 3)
        plan = prune_action.prune_one(context(tmp_path, KeepPolicy(last=2), NOW), config)
        remaining = {f.name for f in drive.files.values() if f.parents == [folder] and f.content is not None}
    assert plan.error == "" and plan.removed == old[2::-1] + new[2:3] + old[-1:]
    assert remaining == {new[0], new[1], new[-1]}


def stored(name: str, run_id: str, job: str = "daily") -> StoredBackup:
    return StoredBackup(name=name, size=1, location="x", job=job, run_id=run_id, sha256="ab" * 32,
                        created="2026-11-30T03:00:00Z", extra={"host": host_name()})


WHEN = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("job, run_id, is_base", [
    ("daily", "abcdef012345", True),        # the listed run id starts with the differential's base run
    ("daily", "", True),                    # no run id listed: the run prefix in the full's name
    ("weekly", "abcdef012345", False),      # another job's full is never this job's base
])
def test_a_differentials_full_is_the_listed_full_of_the_job_whose_run_id_starts_with_its_base(job, run_id,
                                                                                               is_base):
    listed = [stored(archive_name(job, WHEN, "abcdef012345"), run_id, job),
              stored(archive_name("daily", WHEN + timedelta(days=1), "0123456789ab", base_run_id="abcdef01"),
                     "0123456789ab")]
    found = {b.name: b for b in prune_action.candidates(listed, "daily", set())}
    assert found[listed[1].name].kind == "differential"
    assert found[listed[1].name].base == (listed[0].name if is_base else "")


def test_a_differential_that_could_belong_to_two_fulls_prunes_nothing(tmp_path, monkeypatch):
    listed = [stored(archive_name("daily", WHEN - timedelta(days=n), f"abcdef01{n:04d}"), f"abcdef01{n:04d}")
              for n in (1, 2)]
    listed.append(stored(archive_name("daily", WHEN, "0123456789ab", base_run_id="abcdef01"), "0123456789ab"))
    monkeypatch.setattr(prune_action.registry, "build", lambda *args, **kwargs: Listing(listed))
    plan, ctx = prune_local(tmp_path, KeepPolicy(last=1))
    assert plan.decisions == [] and plan.removed == [] and ctx.history.deletions() == []
    assert plan.error == (f"nothing pruned: differential {listed[2].name} could belong to 2 fulls "
                          f"({listed[1].name}, {listed[0].name}); nothing decided")


class Listing:
    """A destination that lists what it is given and must never be asked to delete."""

    def __init__(self, backups):
        self.backups = backups

    def list(self, job=None):
        return list(self.backups)

    def delete(self, name):
        raise AssertionError(f"asked to delete {name}")

    def close(self):
        pass
