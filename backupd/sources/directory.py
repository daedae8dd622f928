"""A directory tree, walked with os.scandir: exclude globs, symbolic links stored as links, never followed."""
from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from functools import partial
from pathlib import Path

from ..config import DirectorySourceConfig
from .base import MemberSink, SourceError, WriteError

_IFMT = 0o170000
BATCH = 256                 # regular files handed to the sink per call (bounds what is held: stat results)
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
    def __init__(self, config: DirectorySourceConfig) -> None:
        self.name = config.name
        self.root = os.fspath(config.path)
        self.exclude = exclude_matcher(config.exclude, self.root)
        self.one_file_system = config.one_file_system

    def write(self, sink: MemberSink, workdir: Path) -> None:
        """Depth first; each directory's header comes right before its contents, as GNU tar writes
        them (tar -x sets a directory's mtime once it moves past it, so contents must follow it)."""
        root_st = self._root_stat()
        if getattr(sink, "differential", False):
            return self._write_listed(sink, root_st)
        pending = [(self.root, "", root_st)]
        while pending:
            path, prefix, st = pending.pop()
            sink.check_cancel()
            sink.add_directory(prefix[:-1], st)
            if self.one_file_system and st.st_dev != root_st.st_dev:
                continue                # a mount point: stored, not descended
            pending.extend(reversed(self._scan(sink, path, prefix)))

    def _write_listed(self, sink: MemberSink, root_st: os.stat_result) -> None:
        """A differential's walk: each directory is listed before its header (a dumpdir of the names it
        holds), and only the files the writer does not keep from the full are handed over."""
        pending = [(self.root, "", root_st)]
        while pending:
            path, prefix, st = pending.pop()
            sink.check_cancel()
            if self.one_file_system and st.st_dev != root_st.st_dev:
                sink.add_directory(prefix[:-1], st, [])     # a mount point: stored empty, not descended
                continue
            pending.extend(reversed(self._scan_listed(sink, path, prefix, st)))

    def _scan_listed(self, sink: MemberSink, path: str, prefix: str, st: os.stat_result) -> list:
        subdirs: list[tuple[str, str, os.stat_result]] = []
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if prefix else 0)
        try:
            dir_fd = os.open(path, flags)
            try:
                listing = self._listing(sink, dir_fd, path, prefix)
                kept = sink.add_directory(prefix[:-1], st, listing, dir_fd=dir_fd)
                self._changed(sink, listing, kept, path, prefix, subdirs, dir_fd)
            finally:
                os.close(dir_fd)
        except WriteError:
            raise
        except OSError as exc:
            self._unreadable_directory(sink, path, prefix, exc)
        return subdirs

    def _listing(self, sink: MemberSink, dir_fd: int, path: str, prefix: str) -> list:
        """[(entry name, lstat)] of what the directory holds and the archive may store."""
        listing, exclude = [], self.exclude
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                name = entry.name
                if exclude is not None and (exclude.match(prefix + name) or exclude.match(name)):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    sink.warn(prefix + name, f"{path}/{name} vanished before it was read; not archived")
                    continue
                kind = st.st_mode & _IFMT
                if kind in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
                    listing.append((name, st))
                else:
                    sink.warn(prefix + name, f"{path}/{name} is a {_SPECIAL_KINDS.get(kind, 'special file')}; skipped")
        return listing

    def _changed(self, sink: MemberSink, listing: list, kept: dict, path: str, prefix: str, subdirs: list,
                 dir_fd: int) -> None:
        """Hand over the listing's entries that are not kept from the full."""
        batch = []
        for name, st in listing:
            kind = st.st_mode & _IFMT
            if kind == stat.S_IFDIR:
                subdirs.append((f"{path}/{name}", prefix + name + "/", st))
            elif kind == stat.S_IFLNK:
                try:
                    sink.add_symlink(prefix + name, os.readlink(name, dir_fd=dir_fd), st)
                except FileNotFoundError:
                    sink.warn(prefix + name, f"{path}/{name} vanished before it was read; not archived")
            elif name not in kept:
                batch.append((prefix + name, name, st))
                if len(batch) >= BATCH:
                    sink.add_files(batch, dir_fd=dir_fd)
                    batch.clear()
        if batch:
            sink.add_files(batch, dir_fd=dir_fd)

    def _root_stat(self) -> os.stat_result:
        try:
            st = os.stat(self.root)
        except OSError as exc:
            raise SourceError(f"cannot read {self.root}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(f"{self.root} is not a directory")
        return st

    def _scan(self, sink: MemberSink, path: str, prefix: str) -> list[tuple[str, str, os.stat_result]]:
        """Archive one directory's entries; returns its subdirectories still to walk.

        Entries are stat'ed, opened and read relative to the directory's descriptor: shorter path look-ups
        for the kernel, and a directory swapped for a link while walked is not followed."""
        subdirs: list[tuple[str, str, os.stat_result]] = []
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if prefix else 0)
        try:
            dir_fd = os.open(path, flags)
            try:
                with os.scandir(dir_fd) as entries:
                    self._entries(sink, entries, path, prefix, subdirs, dir_fd)
            finally:
                os.close(dir_fd)
        except WriteError:
            raise               # the archive's side, not this directory
        except OSError as exc:
            self._unreadable_directory(sink, path, prefix, exc)
        return subdirs

    def _unreadable_directory(self, sink: MemberSink, path: str, prefix: str, exc: OSError) -> None:
        """Below the root, a directory that vanished or changed type is a warning; else the run fails."""
        if prefix and exc.errno in _DIRECTORY_CHANGED:
            sink.warn(prefix.rstrip("/"), f"directory {path} {_DIRECTORY_CHANGED[exc.errno]}")
            return
        raise SourceError(f"cannot read directory {path}: {exc.strerror}") from None

    def _entries(self, sink: MemberSink, entries, path: str, prefix: str, subdirs: list, dir_fd: int) -> None:
        """The hot loop (once per file): regular files are handed over in batches, without a dispatch
        table, for speed."""
        exclude, batch = self.exclude, []
        add_files = getattr(sink, "add_files", None) or partial(_one_by_one, sink)
        for entry in entries:
            name = entry.name                           # opened relative to dir_fd
            member = prefix + name                      # the path relative to the source's root
            if exclude is not None and (exclude.match(member) or exclude.match(name)):
                continue
            if entry.is_file(follow_symlinks=False):   # from the directory listing: no stat call
                batch.append((member, name, None))      # the writer stats the file once it is open
                if len(batch) >= BATCH:
                    add_files(batch, dir_fd=dir_fd)
                    batch.clear()
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                kind = st.st_mode & _IFMT
                if kind == stat.S_IFREG:
                    add_files([(member, name, st)], dir_fd=dir_fd)
                elif kind == stat.S_IFDIR:
                    subdirs.append((f"{path}/{name}", member + "/", st))
                elif kind == stat.S_IFLNK:
                    sink.add_symlink(member, os.readlink(name, dir_fd=dir_fd), st)
                else:
                    sink.warn(member, f"{path}/{name} is a {_SPECIAL_KINDS.get(kind, 'special file')}; skipped")
            except FileNotFoundError:
                sink.warn(member, f"{path}/{name} vanished before it was read; not archived")
        if batch:
            add_files(batch, dir_fd=dir_fd)


def _one_by_one(sink: MemberSink, batch: list, *, dir_fd: int) -> None:
    """add_files for a sink that only offers add_file."""
    for member, entry, st in batch:
        sink.add_file(member, entry, st, dir_fd=dir_fd)
