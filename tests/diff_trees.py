"""Trees for differential-backup tests: a snapshot of what a tree holds, and its restore with real tar -G."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root`: (kind, mode, mtime in whole seconds, bytes or link target)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), path.read_bytes())
    return found


def tar_restore(archives: list[Path], target: Path) -> None:
    """`zstd -dc ARCHIVE | tar -G -x -C TARGET` for each archive in turn, as the README says."""
    target.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        subprocess.run(f"zstd -qdc '{archive}' | tar -G -x -C '{target}'", shell=True, check=True)


def members(archive: Path) -> list[str]:
    """The member names of a .tar.zst, as GNU tar lists them."""
    out = subprocess.run(f"zstd -qdc '{archive}' | tar -t", shell=True, check=True, capture_output=True, text=True)
    return out.stdout.splitlines()
