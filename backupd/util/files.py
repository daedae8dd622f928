"""Durable file-system writes: fsync of directories, atomic replacement of small files, free space."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make the directory's entries (a rename, a new or removed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, tmp_prefix: str = ".") -> None:
    """Replace `path` with `data` all at once: written to `<tmp_prefix><name>.<random>` next to it (created
    with `mode`, less the umask, never chmod-ed afterwards), fsynced, renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{tmp_prefix}{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def free_space(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the file system holding `path`; None if unknown."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
