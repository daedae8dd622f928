"""`python -m bench`: generate the datasets, run every benchmark asked for, print a table, write JSON.

    python -m bench                          all benchmarks, 5 runs each (what `make bench` does)
    python -m bench --only mixed,ctl --repeat 3
    python -m bench --big                    also the 8 GiB mixed dataset (memory must stay flat)
    python -m bench --quick                  small datasets, few runs: a smoke test of the harness
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import sys
import time
from pathlib import Path

from . import archiving, daemon_bench, daemon_cmd, datasets, drive_bench, encryption_bench, report, restore_bench
from .baselines import RUNNERS
from .measure import REPO_ROOT, BenchError, MiB

HERE = Path(__file__).resolve().parent
ARCHIVE = ("mixed", "tiny")
DAEMON = ("idle", "ready", "ctl", "drive", "encryption", "restore")
QUICK = {"mixed": "quick-mixed", "tiny": "quick-tiny"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ARCHIVE + DAEMON),
                        help=f"comma-separated benchmarks among {', '.join(ARCHIVE + DAEMON)} (default: all)")
    parser.add_argument("--tools", default=",".join(RUNNERS), help="archivers to compare (default: all)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each archiver (default 5)")
    parser.add_argument("--big", action="store_true", help="also run the 8 GiB mixed dataset")
    parser.add_argument("--big-repeat", type=int, default=1, help="runs on the 8 GiB dataset (default 1)")
    parser.add_argument("--big-tools", default="tar|zstd,backupd", help="archivers run on the 8 GiB dataset")
    parser.add_argument("--quick", action="store_true", help="tiny datasets and short windows (smoke test)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle window (default 60)")
    parser.add_argument("--ctl-repeat", type=int, default=20, help="backupctl/python runs (default 20)")
    parser.add_argument("--drive-mib", type=int, default=256, help="size of the Drive upload (default 256)")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data", help="where datasets are kept")
    parser.add_argument("--work-dir", type=Path, default=HERE / "work", help="scratch space for outputs")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results", help="where the JSON goes")
    parser.add_argument("--name", default="latest", help="result file name (default: latest)")
    args = parser.parse_args(argv)
    args.only = [item.strip() for item in args.only.split(",") if item.strip()]
    args.tools = [item.strip() for item in args.tools.split(",") if item.strip()]
    args.big_tools = [item.strip() for item in args.big_tools.split(",") if item.strip()]
    unknown = ([x for x in args.only if x not in ARCHIVE + DAEMON]
               + [t for t in args.tools + args.big_tools if t not in RUNNERS])
    if unknown:
        parser.error(f"unknown benchmark or tool: {', '.join(unknown)}")
    if args.quick:
        args.repeat, args.big = min(args.repeat, 2), False
        args.idle_seconds, args.ctl_repeat, args.drive_mib = min(args.idle_seconds, 2.0), 3, 8
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def archive_plan(args) -> list[tuple[str, int, list[str]]]:
    """(dataset spec name, repeats, tools) for each archive benchmark asked for."""
    plan = [(QUICK[name] if args.quick else name, args.repeat, args.tools) for name in ARCHIVE if name in args.only]
    return plan + ([("mixed-8g", args.big_repeat, args.big_tools)] if args.big else [])


def run_archive(args, work: Path, results: dict) -> None:
    for spec_name, repeat, tools in archive_plan(args):
        data = datasets.ensure(datasets.SPECS[spec_name], args.data_dir, log=log)
        log(f"archiving {spec_name} ({repeat} runs each)")
        label = spec_name.removeprefix("quick-")
        results.setdefault("archive", {})[label] = archiving.bench_dataset(
            data, work / spec_name, tools, repeat, log=log)
    datasets.remove_stale(args.data_dir)


def run_daemon(args, work: Path, results: dict) -> None:
    table = {
        "ready": (daemon_cmd.daemon_missing, lambda: daemon_bench.bench_ready(work, max(args.repeat, 3))),
        "idle": (daemon_cmd.daemon_missing, lambda: daemon_bench.bench_idle(work, args.idle_seconds)),
        "ctl": (lambda: daemon_cmd.daemon_missing() or daemon_cmd.ctl_missing(),
                lambda: daemon_bench.bench_ctl(work, args.ctl_repeat)),
        "drive": (drive_bench.missing, lambda: drive_bench.bench_drive(
            work / "drive", args.data_dir, args.drive_mib * MiB, args.repeat)),
        "encryption": (encryption_bench.missing, lambda: encryption_bench.run(args, work, log)),
        "restore": (restore_bench.missing, lambda: restore_bench.run(args, work, log)),
    }
    for name in DAEMON:
        if name not in args.only:
            continue
        missing, bench = table[name]
        reason = missing()
        log(f"{name}: " + (f"unavailable: {reason}" if reason else "measuring"))
        try:
            results[name] = {"unavailable": reason} if reason else bench()
        except BenchError as exc:
            log(f"{name}: error: {exc}")
            results[name] = {"error": str(exc)}


def compile_bytecode() -> None:
    """Measure backupd as installed (byte-compiled), not as compiled afresh on every start.

    An environment with PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every backupd module at each
    start of the daemon and of backupctl; a pip or distribution install ships the .pyc files."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(REPO_ROOT / "backupd"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    compile_bytecode()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    work = args.work_dir / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    results = {"name": args.name, "started": started, "repeat": args.repeat, "quick": args.quick,
               "machine": {**report.machine(), "loadavg_start": os.getloadavg()}}
    run_archive(args, work, results)
    run_daemon(args, work, results)
    results["machine"]["loadavg_end"] = os.getloadavg()   # other work on the machine skews figures
    results["goals"] = report.goals(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{args.name}.json"
    out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    text = report.render(results)
    (args.results_dir / f"{args.name}.md").write_text(text)
    print(text)
    log(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
