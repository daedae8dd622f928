"""Smoke tests of the differential benchmark: its seeded week of changes, and one quick run end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import datasets, differential_report, differential_tree as trees
from bench.measure import MiB

from tests.bench.test_harness import _digest

REPO = Path(__file__).resolve().parents[2]
SPEC = trees.SPECS["quick"]


def test_the_tree_and_its_daily_change_are_the_same_on_every_run(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        built = trees.build(SPEC, root)
        log_before = (root / trees.LOG).stat().st_size
        done = trees.change(SPEC, root, 1)
    assert _digest(roots[0]) == _digest(roots[1])
    assert built["files"] == SPEC.small.small_files + SPEC.mid_files + 1
    assert done == {"modified": SPEC.modified, "new": SPEC.new, "deleted": SPEC.deleted, "appended": SPEC.appended}
    after = datasets.summary(roots[0])
    assert after["files"] == built["files"] + SPEC.new - SPEC.deleted
    assert (roots[0] / trees.LOG).stat().st_size == log_before + SPEC.appended


def test_quick_run_reports_the_week_the_restore_and_the_memory(tmp_path):
    argv = [sys.executable, "-m", "bench.bench_differential", "--quick", "--variants", "full every day,differential",
            "--restore-repeat", "1", "--work-dir", str(tmp_path), "--results", str(tmp_path / "smoke.json")]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "smoke.json").read_text())
    week = results["week"]["variants"]
    full_job, differential = week["full every day"]["days"], week["differential"]["days"]
    assert [day["kind"] for day in full_job] == ["full"] * (SPEC.days + 1)
    assert [day["kind"] for day in differential] == ["full"] + ["differential"] * SPEC.days
    stored_full, stored_differential = (differential_report.daily_bytes(days) for days in (full_job, differential))
    assert all(ours < full / 2 for ours, full in zip(stored_differential[1:], stored_full[1:]))
    restores = results["restore"]["restores"]
    assert "tar -G: full + differential" in restores and restores["tar -G: full alone"]["archives"] == 1
    assert all(entry["identical"] for entry in restores.values()), restores
    assert results["rss"]["differential"]["kind"] == "differential"
    assert results["rss"]["differential"]["peak_rss"] > MiB
    unmeasured = [goal["goal"] for goal in results["goals"] if goal["status"] == "not measured"]
    # not run: the delta variant (its bytes, times and restore) and restic (the bytes goal's reference)
    assert len(unmeasured) == 6 and all("delta" in goal or "restic" in goal for goal in unmeasured), unmeasured
    assert "restic not measured" in done.stdout
    assert "### goals" in done.stdout
    assert list(tmp_path.iterdir()) == [tmp_path / "smoke.json"]        # the scratch trees are gone
