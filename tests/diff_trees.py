"""Trees for differential-backup tests: a snapshot of what a tree holds, and its restore with real tar -G."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.archive.helpers import tree_state


def snapshot(root: Path) -> dict[str, tuple]:
    """tests.archive.helpers.tree_state without folders' mtimes (tar -G's purge may touch them)."""
    return {path: state[:3] if state[0] == "dir" else state for path, state in tree_state(root).items()}


def tar_restore(archives: list[Path], target: Path) -> None:
    """`zstd -dc ARCHIVE | tar -G -x -C TARGET` for each archive in turn, as the README says."""
    target.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        subprocess.run(f"zstd -qdc '{archive}' | tar -G -x -C '{target}'", shell=True, check=True)


def members(archive: Path) -> list[str]:
    """The member names of a .tar.zst, as GNU tar lists them."""
    out = subprocess.run(f"zstd -qdc '{archive}' | tar -t", shell=True, check=True, capture_output=True, text=True)
    return out.stdout.splitlines()
