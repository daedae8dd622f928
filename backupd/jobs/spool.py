"""The spool: where an archive is written under a temporary name, then renamed once complete.

Nothing in the spool is ever listed as a backup; destinations only ever see complete, renamed archives.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..util.files import fsync_directory

PARTIAL = ".partial"
WORKDIR = ".work"
DEFAULT_MAX = 10 << 30      # daemon.spool_max when unset: 10 GiB, or FS_SHARE of the file system if smaller
FS_SHARE = 0.2


class Spool:
    def __init__(self, state_dir: Path):
        self.root = state_dir / "spool"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def partial_path(self, archive_name: str) -> Path:
        return self.root / (archive_name + PARTIAL)

    def final_path(self, archive_name: str) -> Path:
        return self.root / archive_name

    def limit(self, configured: int | None) -> int:
        """How much the archives awaiting upload may take: daemon.spool_max, or the default."""
        if configured is not None:
            return configured
        try:
            st = os.statvfs(self.root)
        except OSError:
            return DEFAULT_MAX
        return min(DEFAULT_MAX, int(st.f_blocks * st.f_frsize * FS_SHARE))

    def stat(self, archive_name: str) -> tuple[int, int]:
        """(size, mtime in ns) of a committed archive in the spool; (0, 0) once it is gone."""
        try:
            st = self.final_path(archive_name).stat()
        except OSError:
            return 0, 0
        return st.st_size, st.st_mtime_ns

    def workdir(self, run_id: str) -> Path:
        path = self.root / (run_id + WORKDIR)
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def commit(self, archive_name: str) -> Path:
        """Rename the finished partial archive to its final spool name, durably."""
        final = self.final_path(archive_name)
        os.replace(self.partial_path(archive_name), final)
        fsync_directory(self.root)
        return final

    def discard(self, archive_name: str) -> None:
        for path in (self.partial_path(archive_name), self.final_path(archive_name)):
            path.unlink(missing_ok=True)

    def remove_workdir(self, run_id: str) -> None:
        shutil.rmtree(self.root / (run_id + WORKDIR), ignore_errors=True)

    def clean(self, keep: set[str]) -> list[str]:
        """Remove leftovers of dead runs (partials, work dirs, archives no upload waits for)."""
        removed = []
        for path in self.root.iterdir():
            if path.name in keep:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed
