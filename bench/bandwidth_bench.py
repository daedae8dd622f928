"""A gdrive destination's `bandwidth_limit`, measured: uploads (and downloads, where the destination fetches)
to the loopback Drive with and without a limit; the limited rate must be within 10% of the limit.

    python -m bench.bandwidth_bench                       20MiB/s, a 200 MiB file, 8 MiB chunks
    python -m bench.bandwidth_bench --limit 5MiB/s --mib 50 --chunk 1MiB

Prints one line per transfer and a JSON summary; exits 1 if a limited rate is off by more than --tolerance.
The Drive server runs in this process (tests/fakes), the destination too: the unlimited rate shows what the
loopback can do, so that a limit above it is not mistaken for a limit that holds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from .drive_bench import BLOCK, missing, upload_file
from .measure import REPO_ROOT, MiB


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bandwidth_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--limit", default="20MiB/s", help="the bandwidth_limit to measure (default 20MiB/s)")
    parser.add_argument("--mib", type=int, default=200, help="size of the file sent, MiB (default 200)")
    parser.add_argument("--chunk", default="8MiB", help="the destination's chunk_size (default 8MiB)")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed relative error (default 0.10)")
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parent / "data")
    return parser.parse_args(argv)


def destination(drive, work: Path, chunk: str, limit: str | None):
    from backupd.config import fields
    from backupd.config.destinations import DriveDestinationConfig
    from backupd.destinations.gdrive.destination import DriveDestination
    credentials = drive.write_credentials(work / "sa.json", drive.oauth.service_account())
    config = DriveDestinationConfig(name="drive", credentials=str(credentials), endpoint=drive.url,
                                    chunk_size=fields.chunk_size(chunk),
                                    bandwidth_limit=fields.rate(limit) if limit else None)
    return DriveDestination(config)


def archive_meta(file: Path, name: str):
    from backupd.destinations.base import ArchiveMeta
    sha = hashlib.sha256()
    with open(file, "rb") as handle:
        while block := handle.read(BLOCK):
            sha.update(block)
    return ArchiveMeta(name=name, job="bench", run_id="0" * 12, host="host", size=file.stat().st_size,
                       sha256=sha.hexdigest(), created="2024-01-01T00:00:00Z")


def timed(what, *args) -> float:
    start = time.perf_counter()
    what(*args)
    return time.perf_counter() - start


def transfers(drive, work: Path, file: Path, chunk: str, limit: str | None) -> dict:
    """Seconds to upload `file` (and to download it back, if the destination can) under `limit`."""
    dest = destination(drive, work, chunk, limit)
    name = f"bench-{'limited' if limit else 'unlimited'}-{time.monotonic_ns()}.tar.zst"
    try:
        seconds = {"upload": timed(dest.store, file, archive_meta(file, name))}
        if hasattr(dest, "fetch"):
            seconds["download"] = timed(dest.fetch, name, work / "fetched.bin")
            (work / "fetched.bin").unlink()
    finally:
        dest.close()
    return seconds


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    reason = missing()
    if reason:
        print(f"bandwidth bench skipped: {reason}", file=sys.stderr)
        return 0
    from backupd.config import fields
    from tests.fakes.drive import DriveServer
    limit = fields.rate(args.limit)
    file = upload_file(args.data_dir, args.mib * MiB)
    size = file.stat().st_size
    summary = {"limit_bytes_s": limit, "size": size, "chunk": args.chunk, "transfers": {}}
    failed = False
    with DriveServer() as drive, tempfile.TemporaryDirectory() as scratch:
        for label, given in (("unlimited", None), ("limited", args.limit)):
            for direction, seconds in transfers(drive, Path(scratch), file, args.chunk, given).items():
                rate = size / seconds
                error = rate / limit - 1
                off = given is not None and abs(error) > args.tolerance
                failed |= off
                summary["transfers"][f"{direction} {label}"] = {"seconds": round(seconds, 3), "MiB_s": rate / MiB,
                                                                "vs_limit": round(error, 4)}
                print(f"{direction:8} {label:9} {size / MiB:7.0f} MiB in {seconds:6.2f} s = {rate / MiB:8.2f} MiB/s"
                      + (f"  ({error:+.1%} of the limit {args.limit}){'  OFF' if off else ''}" if given else ""))
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
