"""Restore benchmark: one backup of the mixed dataset (made by `backupd --once`, untimed) restored from the
local destination into a fresh folder, against `zstd -dc | tar -x`, in the same run.

Restorers, round-robin, each run a fresh child writing into a fresh folder (bench.archiving's conventions,
the archive read once untimed before each run so every restorer starts from a warm page cache; the restored
trees are kept until the end when the disk has room, their pages dropped from the cache: on ext4 without a
journal, creating files soon after others were deleted skips over the freed inodes one by one, which cost
each run ~150 us a file, and unevenly; and a page cache filled by earlier runs slows the later ones):
- `zstd|tar`: `zstd -dc ARCHIVE | tar -x -C DIR` (no checksums at all): the baseline;
- `backupctl --config`: `backupctl restore latest --config CFG --to DIR`, the daemon stopped: backupctl reads
  the history and the destination itself;
- `backupctl (daemon)`: the same with the daemon running: the archive streamed over the control socket.
backupctl checks the archive's sha256 against the record and every member against MANIFEST.json, stages
the tree and moves it into place. Peak RSS is backupctl's (wait4), the daemon's is not included.

    python -m bench.restore_bench [--quick] [--repeat N]      this benchmark alone
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from . import daemon_bench, daemon_cmd, datasets
from .measure import MiB, BenchError, Invocation, run_once, summarize

RATIO_GOAL = 1.3            # restore <= 1.3x zstd -dc | tar -x
RSS_GOAL_MIB = 100.0
BASE = "zstd|tar"
HERE = Path(__file__).resolve().parent


def _zstd_tar(archive: Path, config: Path, out: Path) -> Invocation:
    script = 'set -o pipefail; mkdir "$2" && zstd -dc -q "$1" | tar -x -C "$2"'
    return Invocation(["bash", "-c", script, "bench", str(archive), str(out / "tree")], cwd=out, output=out)


def _backupctl(daemon: bool) -> Callable[[Path, Path, Path], Invocation]:
    def prepare(archive: Path, config: Path, out: Path) -> Invocation:
        way = [] if daemon else ["--config", str(config)]
        argv = daemon_cmd.ctl_argv(config.parent / "backupd.sock") + ["restore", "latest", *way,
                                                                      "--to", str(out / "tree")]
        return Invocation(argv, cwd=out, output=out, env=daemon_cmd.ENV)
    return prepare


RESTORERS = {BASE: _zstd_tar, "backupctl --config": _backupctl(False), "backupctl (daemon)": _backupctl(True)}


def missing() -> str | None:
    if not shutil.which("zstd"):
        return "`zstd` is not installed (apt-get install zstd)"
    return daemon_cmd.once_missing() or daemon_cmd.ctl_missing()


def run(args, work: Path, log) -> dict:
    """The benchmark as `python -m bench --only restore` runs it (the quick dataset with --quick)."""
    data = datasets.ensure(datasets.SPECS["quick-mixed" if args.quick else "mixed"], args.data_dir, log=log)
    return bench_restore(data, work / "restore", max(args.repeat, 3), log=log)


def make_backup(data: Path, store: Path) -> tuple[Path, Path]:
    """(the configuration, the archive) of one untimed backup of `data` into store/out."""
    store.mkdir(parents=True)
    config = daemon_cmd.write_config(store, data)
    run_once(Invocation(daemon_cmd.once_argv(config), cwd=store, output=store / "out", env=daemon_cmd.ENV),
             store / "backup.log")
    return config, next((store / "out").glob("*.tar.zst"))


@contextmanager
def _fresh(run: Path, keep: bool):
    """A new folder for one timed run, removed (untimed) once it is measured unless `keep`; then its
    pages leave the cache."""
    run.mkdir(parents=True)
    os.sync()       # the earlier runs' writeback is not charged to this one
    yield run
    if not keep:
        shutil.rmtree(run, ignore_errors=True)
        return
    os.sync()
    for folder, _, names in os.walk(run):
        for name in names:
            _drop_cached(os.path.join(folder, name))


def _drop_cached(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:         # a symlink, or a file this user cannot read
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def bench_restore(data: Path, work: Path, repeat: int, log=print) -> dict:
    config, archive = make_backup(data, work / "store")
    samples: dict[str, list] = {name: [] for name in RESTORERS}
    info = datasets.summary(data)
    keep = shutil.disk_usage(work).free > 2 * repeat * len(RESTORERS) * info["bytes"]
    try:
        with daemon_bench.running_daemon(config.parent):     # the same state and destination: its history knows it
            for index in range(repeat):
                for name, prepare in RESTORERS.items():
                    subprocess.run(["cat", str(archive)], stdout=subprocess.DEVNULL, check=True)   # warm cache
                    slug = "".join(c if c.isalnum() else "-" for c in name)
                    with _fresh(work / f"{slug}-{index}", keep) as run:
                        samples[name].append(run_once(prepare(archive, config, run), run.with_name(run.name + ".log")))
                    log(f"  {name} run {index + 1}/{repeat}: {samples[name][-1].wall:.2f} s")
    finally:
        for run in (path for path in work.iterdir() if path.is_dir() and path.name != "store"):
            shutil.rmtree(run, ignore_errors=True)
    results = {name: summarize(series) for name, series in samples.items()}
    for entry in results.values():
        entry["wall_ratio"] = entry["wall_median"] / results[BASE]["wall_median"]
    return {"dataset": {"path": _shown(data), **info}, "archive_bytes": archive.stat().st_size,
            "restorers": results}


def _shown(path: Path) -> str:
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(HERE.parent))
    except ValueError:
        return resolved.name


COLUMNS = (   # header, the cell of a restorer's summary
    ("wall median (s)", lambda e: f"{e['wall_median']:.2f}"),
    ("min-max (s)", lambda e: f"{e['wall_min']:.2f}-{e['wall_max']:.2f}"),
    ("x zstd|tar", lambda e: f"{e['wall_ratio']:.2f}"),
    ("CPU (s)", lambda e: f"{e['cpu_median']:.2f}"),
    ("peak RSS (MiB)", lambda e: f"{e['peak_rss_max'] / MiB:.1f}"),
)


def table(result: dict) -> str:
    """The restorers as a Markdown table."""
    info = result["dataset"]
    head = (f"### restore: {info['files']} files, {info['bytes'] / MiB:.1f} MiB (archive "
            f"{result['archive_bytes'] / MiB:.1f} MiB) from the local destination into a fresh folder")
    rows = [["restorer", *(title for title, _ in COLUMNS)], ["---"] * (len(COLUMNS) + 1)]
    rows += [[name, *(cell(entry) for _, cell in COLUMNS)] for name, entry in result["restorers"].items()]
    return "\n".join([head, *("| " + " | ".join(row) + " |" for row in rows)])


def _ratio(name: str):
    """The goal's figure getter: `name`'s wall time over the baseline's (None when not measured)."""
    return lambda results: ((results.get("restore", {}).get("restorers", {}).get(name) or {}).get("wall_ratio"),
                            RATIO_GOAL)


def _peak_rss(results: dict):
    measured = results.get("restore", {}).get("restorers", {})
    peaks = [entry["peak_rss_max"] for name, entry in measured.items() if name != BASE]
    return (max(peaks) / MiB, RSS_GOAL_MIB) if peaks else None


GOALS = [*[(f"restore: {name} wall <= {RATIO_GOAL}x zstd -dc | tar -x", _ratio(name))
           for name in RESTORERS if name != BASE],
         (f"restore: backupctl peak RSS (MiB) <= {RSS_GOAL_MIB:.0f}", _peak_rss)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restore_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small dataset (checks the harness only)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each restorer (default 3)")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--work-dir", type=Path, default=HERE / "work" / "restore-bench")
    args = parser.parse_args(argv)
    reason = missing()
    if reason:
        print(f"restore: unavailable: {reason}", file=sys.stderr)
        return 1
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir) / f"run-{len(list(args.work_dir.iterdir()))}"
    try:
        result = run(args, work, lambda message: print(message, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"restore: error: {exc}", file=sys.stderr)
        return 1
    print(table(result))
    for goal, getter in GOALS:
        figure, limit = getter({"restore": result})
        print(f"- {goal}: {figure:.2f} ({'met' if figure <= limit else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
