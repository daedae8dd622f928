"""The differential benchmark's restores: a full alone against a full + differential, by backupctl and by tar -G.

The full alone is the full job's last (the week's final tree); the sets are the differential jobs' full +
last differential (the same tree). Each way is timed against its own full alone, round-robin, the archives
read once untimed before each run, the trees kept until the end with their pages dropped from the cache
(bench.restore_bench's conventions), or on a tmpfs when it has room: there each tree is removed once measured
(removing costs the next restore nothing on tmpfs; on ext4 it would). Each set's tree of the first round is
compared with its way's full alone's (`diff -r`, MANIFEST.json left out: each archive has its own).
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from . import daemon_cmd, restore_bench
from .measure import Invocation, run_once

TAR_SCRIPT = ('set -o pipefail; out="$1"; shift; mkdir "$out" && '
              'for a; do zstd -dc -q "$a" | tar -G -x -C "$out" || exit 1; done')
# label -> (way, the week's variant whose archives it restores: its last full alone, or a set)
RESTORES = {"backupctl: full alone": ("backupctl", "full every day"),
            "backupctl: full + differential": ("backupctl", "differential"),
            "backupctl: full + differential with a delta": ("backupctl", "differential+delta"),
            "tar -G: full alone": ("tar", "full every day"),
            "tar -G: full + differential": ("tar", "differential")}


def _ctl(work: Path) -> list[str] | None:
    """backupctl's argv when it restores a bare differential over its full (`--archive D --base F`), else None."""
    ctl = daemon_cmd.ctl_argv(work / "none.sock")
    usage = subprocess.run(ctl + ["restore", "--help"], capture_output=True, text=True,
                           env={**os.environ, **daemon_cmd.ENV})
    return ctl if "--base" in usage.stdout else None


def _argv(way: str, ctl: list[str], archives: list[Path], out: Path) -> list[str]:
    if way == "tar":
        return ["bash", "-c", TAR_SCRIPT, "bench", str(out), *map(str, archives)]
    base = ["--base", str(archives[0])] if len(archives) > 1 else []
    return ctl + ["restore", "--archive", str(archives[-1]), *base, "--to", str(out)]


def _archives(week: dict, work: Path, variant: str) -> list[Path] | None:
    """The variant's last full alone (the full job), or its set's full + last differential; None if absent."""
    days = week["variants"].get(variant, {}).get("days")
    if not days or not days[-1]["archives"]:
        return None
    out = work / week["folders"][variant] / "out"
    if variant == "full every day":
        return [out / days[-1]["archives"][0]]
    if days[-1]["kind"] != "differential":
        return None
    base = next(day for day in reversed(days) if day["kind"] == "full")
    return [out / base["archives"][0], out / days[-1]["archives"][0]]


def bench_restore(week: dict, work: Path, repeat: int, log) -> dict:
    """Every restore of RESTORES that can run, `repeat` times round-robin; medians and ratios to its full alone."""
    ctl = _ctl(work)
    plan, skipped = {}, {}
    for label, (way, variant) in RESTORES.items():
        archives = _archives(week, work, variant)
        if way == "backupctl" and ctl is None:
            skipped[label] = "backupctl restore has no --base yet"
        elif archives is None:
            skipped[label] = f"the week's {variant} variant did not end with a restorable backup"
        else:
            plan[label] = (way, archives)
    folder, on_tmpfs = _restore_root(work, week["tree"]["bytes"])
    samples, differences = {label: [] for label in plan}, {}
    try:
        for index in range(repeat):
            for number, (label, (way, archives)) in enumerate(plan.items()):
                subprocess.run(["cat", *map(str, archives)], stdout=subprocess.DEVNULL, check=True)   # warm cache
                with restore_bench._fresh(folder / f"{number}-{index}", keep=not on_tmpfs or index == 0) as run:
                    load = os.getloadavg()[0]
                    sample = run_once(Invocation(_argv(way, ctl, archives, run / "tree"), cwd=run, output=run,
                                                 env=daemon_cmd.ENV), run.with_name(run.name + ".log"))
                samples[label].append({"wall": sample.wall, "cpu": sample.cpu, "peak_rss": sample.peak_rss,
                                       "load": load})
                log(f"  restore {label} run {index + 1}/{repeat}: {sample.wall:.2f} s, load {load:.2f}")
                if index == 0 and len(archives) > 1:
                    differences[label] = _same(folder, plan, label, drop=on_tmpfs)
            if index == 0 and on_tmpfs:         # the fulls alone, kept for the comparisons
                for path in folder.glob("*-0"):
                    shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results = {label: _summary(samples[label], archives, differences.get(label, ""))
               for label, (_, archives) in plan.items()}
    _ratios(results)
    return {"restores": results, "skipped": skipped, "into": "tmpfs" if on_tmpfs else "the work folder's file system"}


def _restore_root(work: Path, tree_bytes: int) -> tuple[Path, bool]:
    """Where the trees are restored: a tmpfs with room for three trees (each tree is removed once measured:
    on tmpfs that costs the next restore nothing), else the work folder (trees kept until the end)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 8 * tree_bytes:
        return Path(tempfile.mkdtemp(prefix="diff-restore-", dir=shm)), True
    return work / "restore", False


def _same(folder: Path, plan: dict, label: str, drop: bool) -> str:
    """'' when the label's first restored tree equals its way's full alone's, else what differs; the label's
    tree is removed afterwards when `drop`."""
    way = plan[label][0]
    full = next((n for n, (_, (w, a)) in enumerate(plan.items()) if w == way and len(a) == 1), None)
    mine = folder / f"{list(plan).index(label)}-0"
    if full is None:
        return "no full alone restored this way to compare with"
    done = subprocess.run(["diff", "-r", "-q", "--no-dereference", "-x", "MANIFEST.json",
                           str(folder / f"{full}-0" / "tree"), str(mine / "tree")], capture_output=True, text=True)
    if drop:
        shutil.rmtree(mine, ignore_errors=True)
    return "" if done.returncode == 0 else (done.stdout + done.stderr)[-600:] or f"diff exited {done.returncode}"


def _summary(series: list[dict], archives: list[Path], difference: str) -> dict:
    return {"wall_median": statistics.median(s["wall"] for s in series),
            "cpu_median": statistics.median(s["cpu"] for s in series),
            "peak_rss_max": max(s["peak_rss"] for s in series), "runs": series,
            "archive_bytes": sum(path.stat().st_size for path in archives), "archives": len(archives),
            "identical": not difference, "difference": difference}


def _ratios(results: dict) -> None:
    """Each set's wall and CPU medians over its way's full alone's."""
    for label, entry in results.items():
        full = results.get(label.split(":")[0] + ": full alone")
        if full and entry["archives"] > 1:
            for figure in ("wall", "cpu"):
                entry[f"{figure}_ratio"] = entry[f"{figure}_median"] / full[f"{figure}_median"]
