"""Differential benchmark: a week of a 1% daily change on a ~1 GiB tree, differential job against a full every
day, restic and borg, all on the same tree in the same run; restore of a set; memory with a 200k-file full.

- week: a seeded tree (bench.differential_tree: 20k small files, 60 mid-size, one 215 MB append-only log),
  backed up on day 0 and after each of seven daily changes (200 files modified, 50 new, 50 deleted, 5 MiB
  appended to the log) by every variant in turn, each by its own `backupd --config CFG --once bench` into
  its own local destination (restic and borg into a repository of their own): bytes stored each day and on
  the destination after the week, each run's wall and CPU time (a differential against the full job's on
  that day), and what the last differential holds;
- restore (bench.differential_restore): the full job's last full alone against the differential jobs' full
  + last differential, by `backupctl restore --archive DIFF --base FULL` (when backupctl has --base) and by
  `zstd -dc | tar -G -x`, each against its own full alone; the restored trees are compared (`diff -r`);
- rss: a tree of 200k small files, a full, a 1% change, then the differential: its peak RSS (wait4 of
  the run and its children, as bench.launch reports).
Each figure carries the 1-minute load average taken when it was measured: the machine is shared.

    python -m bench.bench_differential [--quick] [--only week,restore,rss] [--restore-repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import daemon_cmd, differential_tree as trees
from .archiving import warm_cache
from .baselines import PASSWORD, _untimed
from .differential_report import goals, render
from .differential_restore import bench_restore
from .measure import MiB, BenchError, Invocation, run_once, tool_version

HERE = Path(__file__).resolve().parent
PROTOTYPE_RESTIC_BYTES = 700_000_000      # the prototype measurement (0.70 GB), when restic is absent
DELTA_GLOBS = ["*.log", "mid/*"]     # the log, and the mid-size files changed in place (a database, an image)
PARTS = ("week", "restore", "rss")


def _backupd(**job_keys):
    def setup(tree: Path, folder: Path):
        config = daemon_cmd.write_config(folder, tree, **job_keys)
        run = Invocation(daemon_cmd.once_argv(config), cwd=folder, output=folder / "out", env=daemon_cmd.ENV)
        return lambda day: run
    return setup


def _restic(tree: Path, folder: Path):
    repo, env = folder / "out", {"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(folder / "cache")}
    _untimed(["restic", "init", "--repository-version", "2", "--repo", str(repo)], env, "restic init")
    argv = ["restic", "--repo", str(repo), "backup", "--quiet", "--compression", "auto", "."]
    return lambda day: Invocation(argv, cwd=tree, output=repo, env=env)


def _borg(tree: Path, folder: Path):
    repo = folder / "out"
    env = {"BORG_BASE_DIR": str(folder / "home"), "BORG_PASSPHRASE": "",
           "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
    _untimed(["borg", "init", "--encryption", "none", str(repo)], env, "borg init")
    return lambda day: Invocation(["borg", "create", "--compression", "zstd,3", f"{repo}::day-{day}", "."],
                                  cwd=tree, output=repo, env=env)


def _tool(name: str):
    return lambda: None if shutil.which(name) else f"{name}: not installed"


def variants(full_every_size: str | None) -> dict:
    """name -> (why it cannot run or None, setup(tree, folder) -> day -> Invocation)."""
    every = {"full_every": {"size": full_every_size}} if full_every_size else {}
    return {"full every day": (daemon_cmd.once_missing, _backupd()),
            "differential": (daemon_cmd.once_missing, _backupd(differential=True, **every)),
            "differential+delta": (daemon_cmd.once_missing,
                                   _backupd(differential=True, delta_files=DELTA_GLOBS, **every)),
            "restic": (_tool("restic"), _restic), "borg": (_tool("borg"), _borg)}


def _measure(invocation: Invocation, tree: Path, log_path: Path) -> dict:
    """One timed run with a warm page cache and no writeback of earlier runs left; its figures."""
    warm_cache(tree)
    os.sync()
    load = os.getloadavg()[0]
    before = set(_names(invocation.output))
    sample = run_once(invocation, log_path)
    added = sorted(set(_names(invocation.output)) - before)
    return {"wall": sample.wall, "cpu": sample.cpu, "peak_rss": sample.peak_rss, "load": load,
            "total_bytes": sample.output_bytes, "archives": added}


def _names(folder: Path) -> list[str]:
    """The archives in a destination folder (not their sidecars)."""
    found = folder.glob("*.tar.zst*") if folder.is_dir() else ()
    return [path.name for path in found if path.name.endswith((".tar.zst", ".tar.zst.age"))]


def _kind(entry: dict) -> str:
    if not entry["archives"]:
        return "-"
    return "differential" if "-diff-" in entry["archives"][0] else "full"


# what a differential's members hold, by where they are in the tree (raw bytes, before compression)
PARTS_OF_ARCHIVE = ((".backupd-delta/", "delta"), ("data/logs/", "log"), ("data/mid/", "mid"),
                    ("data/small/", "small"), ("MANIFEST.json", "manifest"))


def breakdown(archive: Path) -> dict:
    """Raw member bytes of an archive by part of the tree (`tar -tv`), and how many delta members it has."""
    listing = subprocess.run(["bash", "-c", 'zstd -dc -q "$1" | tar -tv', "bench", str(archive)],
                             capture_output=True, text=True)
    parts = {name: 0 for _, name in PARTS_OF_ARCHIVE} | {"other": 0, "delta_members": 0}
    for line in listing.stdout.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[2].isdigit():
            continue
        part = next((name for prefix, name in PARTS_OF_ARCHIVE if fields[5].startswith(prefix)), "other")
        parts[part] += int(fields[2])
        parts["delta_members"] += part == "delta"
    return parts


def bench_week(spec: trees.TreeSpec, work: Path, chosen: dict, log) -> dict:
    """Day 0 and `spec.days` changed days, every variant after every day; per-variant daily figures. Without
    restic, the full-size week is compared with the issue's prototype figure for restic."""
    tree = work / "tree"
    info = trees.build(spec, tree)
    log(f"week: tree of {info['files']} files, {info['bytes'] / MiB:.0f} MiB")
    runs, days = {}, []
    results = {}
    for name, (missing, setup) in chosen.items():
        reason = missing()
        results[name] = {"unavailable": reason}
        if not reason:
            (work / _slug(name)).mkdir()
            runs[name] = setup(tree, work / _slug(name))
            results[name] = {"days": []}
    for day in range(spec.days + 1):
        days.append(trees.change(spec, tree, day) if day else {"built": info})
        for name, prepare in runs.items():
            invocation = prepare(day)
            entry = _measure(invocation, tree, work / f"{_slug(name)}-day{day}.log")
            entry["kind"] = _kind(entry) if name not in ("restic", "borg") else "snapshot"
            if entry["kind"] == "differential":
                entry["members"] = breakdown(invocation.output / entry["archives"][0])
            results[name]["days"].append(entry)
            log(f"  day {day} {name}: {entry['kind']} {entry['wall']:.2f} s, "
                f"{entry['total_bytes'] / 1e6:.1f} MB stored, load {entry['load']:.2f}")
    return {"tree": info, "changes": days, "variants": results, "folders": {n: _slug(n) for n in runs},
            "restic_reference": PROTOTYPE_RESTIC_BYTES if spec.name == "week" else None}


SLUGS = {"full every day": "full", "differential": "diff", "differential+delta": "delta"}


def _slug(name: str) -> str:
    """A variant's folder name (short: the daemon's socket lives in it)."""
    return SLUGS.get(name, name)


def bench_rss(spec: trees.TreeSpec, work: Path, log) -> dict:
    """A full of `spec`'s tree, one day's change, then the differential: each run's figures."""
    tree = work / "rss-tree"
    info = trees.build(spec, tree)
    log(f"rss: tree of {info['files']} files")
    run = _backupd(differential=True)(tree, work / "rss-job")(0)
    full = _measure(run, tree, work / "rss-full.log")
    trees.change(spec, tree, 1)
    differential = _measure(run, tree, work / "rss-diff.log")
    for entry in (full, differential):
        entry["kind"] = _kind(entry)
    log(f"  rss: full {full['peak_rss'] / MiB:.1f} MiB, differential {differential['peak_rss'] / MiB:.1f} MiB")
    shutil.rmtree(tree, ignore_errors=True)
    return {"tree": info, "full": full, "differential": differential}


def _commit() -> str:
    """The checkout's commit, marked when its working tree holds uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "backupd"], cwd=HERE,
                           capture_output=True, text=True)
    return (head.stdout.strip() or "unknown") + (" + uncommitted changes in backupd/" if dirty.stdout else "")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_differential", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small trees, two days (checks the harness only)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    parser.add_argument("--variants", default="full every day,differential,differential+delta,restic,borg",
                        help="comma-separated week variants")
    parser.add_argument("--full-every-size", help="the differential jobs' full_every.size (default: the job's)")
    parser.add_argument("--restore-repeat", type=int, default=3, help="runs of each restore (default 3)")
    parser.add_argument("--work-dir", type=Path, help="scratch folder (default: a new one in the temp dir), "
                                                      "removed at the end")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "differential.json")
    args = parser.parse_args(argv)
    args.only = [part.strip() for part in args.only.split(",") if part.strip()]
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    if args.quick:
        args.restore_repeat = min(args.restore_repeat, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)
    reason = daemon_cmd.once_missing() or daemon_cmd.ctl_missing() or _tool("zstd")()
    if reason:
        print(f"differential: unavailable: {reason}", file=sys.stderr)
        return 1
    table = variants(args.full_every_size)
    chosen = {name: table[name] for name in args.variants}
    work = Path(tempfile.mkdtemp(prefix="diff-", dir=args.work_dir))
    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "load_start": os.getloadavg(),
               "nproc": os.cpu_count(), "restic": tool_version(["restic", "version"]),
               "borg": tool_version(["borg", "--version"]), "full_every_size": args.full_every_size or "default",
               "commit": _commit()}
    try:
        if "week" in args.only or "restore" in args.only:
            results["week"] = bench_week(trees.SPECS["quick" if args.quick else "week"], work, chosen, log)
            shutil.rmtree(work / "tree", ignore_errors=True)
        if "restore" in args.only:
            results["restore"] = bench_restore(results["week"], work, args.restore_repeat, log)
        if "rss" in args.only:
            results["rss"] = bench_rss(trees.SPECS["quick-rss" if args.quick else "rss"], work, log)
    except BenchError as exc:
        print(f"differential: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_end"] = os.getloadavg()
    results["goals"] = goals(results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
