"""The python source's tables: the daemon's peak memory and the time for tables of growing size.

    python -m bench.python_rows [--rows 1000,100000,1000000] [--work DIR]

Starts the real daemon with one python source whose State returns one table of N rows (five columns, about
75 bytes a row), runs a backup for each N and prints the daemon's resident memory before the run, its peak
during the run (VmHWM, reset before each run), and the run's wall time. Memory that stays flat as N grows is
what streaming the rows (JSON lines on a pipe, CSV written a batch at a time) buys.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

from backupd.client import Client
from tests.configs import job, write_config
from tests.e2e.daemon_harness import Daemon
from tests.e2e.proc_memory import MiB_KIB, memory_kib, reset_peak

APP = """
    import os
    from pathlib import Path

    class State:
        def dump(self, folder):
            count = int(Path(os.environ["ROWS_FILE"]).read_text())
            return {"items": ([i, f"item number {i}", "x" * 40, i * 0.25, None] for i in range(count))}
"""


def measure(work: Path, counts: list[int]) -> list[dict]:
    (work / "app").mkdir(parents=True)
    (work / "app" / "rows_state.py").write_text(textwrap.dedent(APP))
    rows_file = work / "rows"
    source = {"type": "python", "factory": "rows_state:State", "path": [str(work / "app")],
              "env": {"ROWS_FILE": str(rows_file)}}
    daemon = Daemon(work, write_config(work, jobs={"main": job(["app"])}, sources={"app": source})).start()
    client, results = Client(daemon.socket, timeout=600), []
    try:
        for count in [1000, *counts]:           # the first run loads what every run needs
            rows_file.write_text(str(count))
            before = memory_kib(daemon.proc.pid)
            reset_peak(daemon.proc.pid)
            started = time.perf_counter()
            record = client.trigger(wait=True)
            seconds = time.perf_counter() - started
            peak = memory_kib(daemon.proc.pid)["VmHWM"]
            results.append({"rows": count, "csv_mib": record.archive.bytes_in / 2**20, "seconds": seconds,
                            "rss_before_mib": before["VmRSS"] / MiB_KIB, "peak_mib": peak / MiB_KIB})
    finally:
        daemon.stop()
    return results[1:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.python_rows", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,100000,1000000", help="table sizes, comma-separated")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-python-rows-"))
    try:
        results = measure(work, [int(n) for n in args.rows.split(",")])
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'rows':>10} {'CSV MiB':>8} {'seconds':>8} {'rows/s':>9} {'RSS before':>11} {'peak':>7} {'growth':>7}")
    for r in results:
        print(f"{r['rows']:>10} {r['csv_mib']:>8.1f} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>9.0f} "
              f"{r['rss_before_mib']:>10.1f}M {r['peak_mib']:>6.1f}M {r['peak_mib'] - r['rss_before_mib']:>+6.1f}M")


if __name__ == "__main__":
    main()
