"""A directory tree, walked with os.scandir: exclude globs, symbolic links stored as links, never followed."""
from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from pathlib import Path

from .base import MemberSink, SourceError

_IFMT = 0o170000
# errno when opening a subdirectory -> the warning (the walk carries on)
_DIRECTORY_CHANGED = {
    errno.ENOENT: "vanished before it was read",
    errno.ENOTDIR: "is no longer a directory (replaced by a file or a link); not followed",
    errno.ELOOP: "is no longer a directory (replaced by a link); not followed",
}
_SPECIAL_KINDS = {
    stat.S_IFSOCK: "socket",
    stat.S_IFIFO: "named pipe",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


def exclude_matcher(patterns, root: str = "") -> re.Pattern | None:
    """One regex for all globs; a glob matches the path relative to the root or the base name.
    A glob spelled as an absolute path under the root is made relative to it."""
    base = root.rstrip("/") + "/"
    cleaned = [p.strip().removeprefix(base).strip("/").removeprefix("./") for p in patterns]
    cleaned = [p for p in cleaned if p]
    if not cleaned:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in cleaned))


class DirectorySource:
    def __init__(self, config) -> None:
        self.name = config.name
        self.root = os.fspath(config.path)
        self.exclude = exclude_matcher(config.exclude, self.root)
        self.one_file_system = config.one_file_system

    def write(self, sink: MemberSink, workdir: Path) -> None:
        root_st = self._root_stat()
        sink.add_directory("", root_st)
        pending = [(self.root, "")]
        while pending:
            path, prefix = pending.pop()
            sink.check_cancel()
            subdirs = self._scan(sink, path, prefix, root_st.st_dev)
            pending.extend(reversed(subdirs))

    def _root_stat(self) -> os.stat_result:
        try:
            st = os.stat(self.root)
        except OSError as exc:
            raise SourceError(f"source {self.name!r}: cannot read {self.root}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(f"source {self.name!r}: {self.root} is not a directory")
        return st

    def _scan(self, sink: MemberSink, path: str, prefix: str, root_dev: int) -> list[tuple[str, str]]:
        """Archive one directory's entries; returns its subdirectories still to walk.

        Entries are stat'ed, opened and read relative to the directory's descriptor: shorter path look-ups
        for the kernel, and a directory swapped for a link while walked is not followed."""
        subdirs: list[tuple[str, str]] = []
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if prefix else 0)
        try:
            dir_fd = os.open(path, flags)
            try:
                with os.scandir(dir_fd) as entries:
                    self._entries(sink, entries, path, prefix, root_dev, subdirs, dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self._unreadable_directory(sink, path, prefix, exc)
        return subdirs

    def _unreadable_directory(self, sink: MemberSink, path: str, prefix: str, exc: OSError) -> None:
        """Below the root, a directory that vanished or changed type is a warning; else the run fails."""
        if prefix and exc.errno in _DIRECTORY_CHANGED:
            sink.warn(prefix.rstrip("/"), f"directory {path} {_DIRECTORY_CHANGED[exc.errno]}")
            return
        raise SourceError(f"source {self.name!r}: cannot read directory {path}: {exc.strerror}") from None

    def _entries(self, sink: MemberSink, entries, path: str, prefix: str, root_dev: int, subdirs: list,
                 dir_fd: int) -> None:
        """The hot loop (once per file): regular files first, without a dispatch table, for speed."""
        exclude, add_file = self.exclude, sink.add_file
        for entry in entries:
            name = entry.name
            rel = prefix + name
            if exclude is not None and (exclude.match(rel) or exclude.match(name)):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                kind = st.st_mode & _IFMT
                if kind == stat.S_IFREG:
                    add_file(rel, name, st, dir_fd=dir_fd)
                elif kind == stat.S_IFDIR:
                    sink.add_directory(rel, st)
                    if not self.one_file_system or st.st_dev == root_dev:
                        subdirs.append((f"{path}/{name}", rel + "/"))
                elif kind == stat.S_IFLNK:
                    sink.add_symlink(rel, os.readlink(name, dir_fd=dir_fd), st)
                else:
                    sink.warn(rel, f"{path}/{name} is a {_SPECIAL_KINDS.get(kind, 'special file')}; skipped")
            except FileNotFoundError:
                sink.warn(rel, f"{path}/{name} vanished before it was read; not archived")
