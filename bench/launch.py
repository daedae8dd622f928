"""Run one command and write its own accounting as JSON: `python -m bench.launch RESULT -- ARGV...`.

Why a launcher: on Linux a child's ru_maxrss starts from the RSS of the process that spawned it (exec
records the high-water mark of the memory it replaces), so a harness holding a large buffer (or the loopback
Drive server's received files) would inflate every child's peak. This small process spawns the command
instead; its own RSS (~10 MiB) is the floor of what is reported. It also times the command itself,
without the launcher's start-up.
"""
from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    result_path, separator, *command = argv
    if separator != "--" or not command:
        print("usage: python -m bench.launch RESULT -- ARGV...", file=sys.stderr)
        return 2
    start = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(result_path, "w") as out:
        json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
                   "exit": code}, out)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
