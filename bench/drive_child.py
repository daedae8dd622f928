"""Child process of the Drive benchmark: store one file with the gdrive DriveDestination, report times and memory.

Usage: python -m bench.drive_child SETTINGS_JSON. Prints one JSON line: seconds spent in store(), RSS before
the upload (after imports and set-up) and the high-water mark after it.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from backupd.config import DriveDestinationConfig
from backupd.destinations import registry
from backupd.destinations.base import ArchiveMeta


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main(settings_path: str) -> int:
    settings = json.loads(Path(settings_path).read_text())
    config = DriveDestinationConfig(name="drive", **settings["options"])
    destination = registry.build(config, state_dir=Path(settings["state_dir"]))
    meta = ArchiveMeta(**settings["meta"])
    rss_before = _status("VmRSS")
    start = time.perf_counter()
    destination.store(Path(settings["file"]), meta)
    seconds = time.perf_counter() - start
    destination.close()
    print(json.dumps({"store_s": seconds, "rss_before": rss_before, "hwm": _status("VmHWM")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
