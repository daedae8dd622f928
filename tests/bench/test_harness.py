"""Smoke tests of the benchmark harness: deterministic datasets, child accounting, one quick end-to-end run."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import datasets, report
from bench.measure import BenchError, Invocation, MiB, run_once

REPO = Path(__file__).resolve().parents[2]
SMALL = datasets.Spec("test-small", 40, 100, 3000, big_files=1, big_size=2 * MiB + 123)


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for folder, dirs, names in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_datasets_are_deterministic_and_reused(tmp_path):
    first = datasets.ensure(SMALL, tmp_path / "a", log=lambda _: None)
    second = datasets.ensure(SMALL, tmp_path / "b", log=lambda _: None)
    assert _digest(first) == _digest(second)
    summary = datasets.summary(first)
    assert summary["files"] == 41
    assert summary["bytes"] > 2 * MiB
    marker = first / "small" / "d0000" / "f000000.txt"
    mtime = marker.stat().st_mtime_ns
    assert datasets.ensure(SMALL, tmp_path / "a", log=pytest.fail) == first   # stamp matches: no rewrite
    assert marker.stat().st_mtime_ns == mtime


def test_changed_spec_is_generated_afresh(tmp_path):
    datasets.ensure(SMALL, tmp_path, log=lambda _: None)
    bigger = datasets.Spec("test-small", 50, 100, 3000)
    root = datasets.ensure(bigger, tmp_path, log=lambda _: None)
    assert datasets.summary(root)["files"] == 50
    datasets.remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test-small"]


def test_run_once_reports_the_childs_own_peak_rss(tmp_path):
    out = tmp_path / "out.bin"
    script = f"b = bytearray(60 << 20); b[::4096] = b'x' * len(b[::4096]); open({str(out)!r}, 'wb').write(b[:1000])"
    sample = run_once(Invocation([sys.executable, "-c", script], cwd=tmp_path, output=out), tmp_path / "log")
    assert sample.peak_rss >= 60 * MiB
    assert sample.output_bytes == 1000
    assert sample.wall > 0 and sample.cpu > 0


def test_the_harness_own_memory_does_not_count_as_the_childs(tmp_path):
    ballast = bytearray(200 * MiB)
    ballast[::4096] = b"x" * len(ballast[::4096])   # touched: resident in this process
    sample = run_once(Invocation([sys.executable, "-c", "pass"], cwd=tmp_path, output=tmp_path), tmp_path / "log")
    assert sample.peak_rss < 50 * MiB
    assert len(ballast) == 200 * MiB


def test_run_once_names_a_failing_command_and_its_error(tmp_path):
    argv = [sys.executable, "-c", "import sys; sys.exit('dataset folder is missing')"]
    with pytest.raises(BenchError, match="exited 1: dataset folder is missing"):
        run_once(Invocation(argv, cwd=tmp_path, output=tmp_path), tmp_path / "log")


def test_quick_run_writes_results_and_goals(tmp_path):
    argv = [sys.executable, "-m", "bench", "--quick", "--tools", "tar|zstd,backupd", "--data-dir",
            str(tmp_path / "data"), "--work-dir", str(tmp_path / "work"), "--results-dir",
            str(tmp_path / "results"), "--name", "smoke", "--only", "mixed,tiny,ready,ctl"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results" / "smoke.json").read_text())
    for dataset in ("mixed", "tiny"):
        tar = results["archive"][dataset]["tools"]["tar|zstd"]
        assert tar["wall_ratio"] == 1.0 and tar["runs"] == 2
        assert tar["output_bytes"] > 0 and tar["peak_rss_max"] > MiB
        ours = results["archive"][dataset]["tools"]["backupd"]
        # measured, or reported (a backupd that is missing or failing is the harness's output, not its error)
        assert "wall_median" in ours or "unavailable" in ours or "exited" in ours.get("error", ""), ours
    for probe in ("ready", "ctl"):
        assert results[probe].get("unavailable") or results[probe].get("runs"), results[probe]
    assert "idle" not in results and "drive" not in results
    assert len(results["goals"]) == len(report.GOALS)      # every goal of every benchmark, measured or not
    assert results["machine"]["nproc"] >= 1
    assert "| tar|zstd | " in done.stdout and "### goals" in done.stdout


def test_profile_lists_where_backupd_spends_its_time(tmp_path):
    argv = [sys.executable, "-m", "bench.profile", "--dataset", "quick-tiny", "--sort", "cumulative",
            "--top", "12", "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "function calls" in done.stdout
    assert "daemon_main.py" in done.stdout
