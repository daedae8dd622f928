"""Where backupd's time goes on a dataset: `python -m bench.profile [--dataset tiny] [--top 25]`.

Runs `backupd --once` under cProfile (the main thread: the walk, reads, tar headers, hashing; the zstd
compressor works in its own threads) into a fresh folder and prints the functions that hold the most time.
"""
from __future__ import annotations

import argparse
import io
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from . import daemon_cmd, datasets
from .__main__ import HERE, compile_bytecode


def profile(dataset: str, data_dir: Path, work_dir: Path, top: int, sort: str) -> str:
    """Profile one `backupd --once` run on `dataset`; return the pstats listing."""
    data = datasets.ensure(datasets.SPECS[dataset], data_dir, log=lambda m: print(m, file=sys.stderr))
    compile_bytecode()
    work_dir.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=f"profile-{dataset}-", dir=work_dir))
    config = daemon_cmd.write_config(run, data)
    stats_path = run / "backupd.prof"
    argv = [sys.executable, "-m", "cProfile", "-o", str(stats_path), "-m", "backupd.cli.daemon_main",
            "--config", str(config), "--once", daemon_cmd.JOB]
    os.sync()
    done = subprocess.run(argv, env={**os.environ, **daemon_cmd.ENV}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"backupd --once failed under the profiler: {done.stderr.strip()[-400:]}")
    out = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiny", choices=sorted(datasets.SPECS))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative", "ncalls"))
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--work-dir", type=Path, default=HERE / "work")
    args = parser.parse_args(argv)
    print(profile(args.dataset, args.data_dir, args.work_dir, args.top, args.sort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
