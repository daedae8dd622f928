"""A directory tree, walked with os.scandir: exclude globs, symbolic links stored as links, never followed."""
from __future__ import annotations

import fnmatch
import os
import re
import stat
from pathlib import Path

from .base import MemberSink, SourceError

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
        """Archive one directory's entries; returns its subdirectories still to walk."""
        subdirs: list[tuple[str, str]] = []
        try:
            with os.scandir(path) as entries:
                self._entries(sink, entries, prefix, root_dev, subdirs)
        except FileNotFoundError:
            if not prefix:
                raise SourceError(f"source {self.name!r}: {path} vanished during the backup") from None
            sink.warn(prefix.rstrip("/"), f"directory {path} vanished before it was read")
        except OSError as exc:
            raise SourceError(f"source {self.name!r}: cannot read directory {path}: "
                              f"{exc.strerror}") from None
        return subdirs

    def _entries(self, sink: MemberSink, entries, prefix: str, root_dev: int, subdirs: list) -> None:
        exclude, add_file = self.exclude, sink.add_file
        for entry in entries:
            name = entry.name
            rel = prefix + name
            if exclude is not None and (exclude.match(rel) or exclude.match(name)):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                sink.warn(rel, f"{entry.path} vanished before it was read; not archived")
                continue
            kind = stat.S_IFMT(st.st_mode)
            if kind == stat.S_IFREG:
                add_file(rel, entry.path, st)
            elif kind == stat.S_IFDIR:
                sink.add_directory(rel, st)
                if not self.one_file_system or st.st_dev == root_dev:
                    subdirs.append((entry.path, rel + "/"))
            elif kind == stat.S_IFLNK:
                self._symlink(sink, rel, entry.path, st)
            else:
                sink.warn(rel, f"{entry.path} is a {_SPECIAL_KINDS.get(kind, 'special file')}; skipped")

    @staticmethod
    def _symlink(sink: MemberSink, rel: str, path: str, st: os.stat_result) -> None:
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            sink.warn(rel, f"{path} vanished before it was read; not archived")
            return
        sink.add_symlink(rel, target, st)
