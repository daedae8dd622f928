"""What a source writes into: a MemberSink bound to one source's folder of the archive."""
from __future__ import annotations

import os
import time
from typing import BinaryIO, Protocol

from .differ import dumpdir


class MemberWriter(Protocol):
    """The archive writer's side of a sink (ArchiveWriter); names here are full member names."""

    differ: object | None       # set when writing a differential
    def write_directory(self, member: str, st: os.stat_result, listing: list | None = None,
                        dir_fd: int | None = None) -> dict: ...
    def write_dumpdir(self, member: str, mode: int, uid: int, gid: int, mtime: float, data: bytes) -> None: ...
    def write_file(self, member: str, path: str, st: os.stat_result | None, dir_fd: int | None) -> None: ...
    def write_files(self, prefix: str, entries: list, dir_fd: int | None) -> None: ...
    def write_symlink(self, member: str, target: str, st: os.stat_result) -> None: ...
    def write_stream(self, member: str, stream: BinaryIO, size: int, mode: int, mtime: float | None) -> None: ...
    def warn(self, member: str, message: str) -> None: ...
    def check_cancel(self) -> None: ...


class SourceSink:
    """The MemberSink one source writes into: member names are prefixed with '<source name>/'."""

    def __init__(self, writer: MemberWriter, source: str) -> None:
        self._writer = writer
        self._source = source
        self._prefix = source + "/"
        self.differential = writer.differ is not None     # add_directory wants each directory's listing
        self._listed = False                # the source wrote its own folder (a directory tree)
        self._streamed: dict[str, dict[bytes, bytes]] = {}  # differential: folder -> {name: dumpdir code}

    def _full(self, member: str) -> str:
        return self._prefix + member if member else self._source

    def add_directory(self, member: str, st: os.stat_result, listing: list | None = None,
                      dir_fd: int | None = None) -> dict:
        """A directory; in a differential, with its listing [(entry name, lstat)] (see
        ArchiveWriter.write_directory): returns the entries kept from the full, which are not to be added."""
        self._listed = self._listed or not member
        return self._writer.write_directory(self._full(member), st, listing, dir_fd)

    def add_file(self, member: str, path: str, st: os.stat_result | None, *, dir_fd: int | None = None) -> None:
        """`path` is relative to `dir_fd` when given (as os.open's dir_fd)."""
        self._note(member)
        self._writer.write_file(self._prefix + member, path, st, dir_fd)

    def add_files(self, entries: list, *, dir_fd: int | None = None) -> None:
        """add_file for each (member, entry, st) of `entries`, in one call: the fast path for many files."""
        self._writer.write_files(self._prefix, entries, dir_fd)

    def add_symlink(self, member: str, target: str, st: os.stat_result) -> None:
        self._writer.write_symlink(self._prefix + member, target, st)

    def add_stream(self, member: str, stream: BinaryIO, size: int, mode: int = 0o600,
                   mtime: float | None = None) -> None:
        self._note(member)
        self._writer.write_stream(self._prefix + member, stream, size, mode, mtime)

    def _note(self, member: str) -> None:
        """A differential's member from a source without a folder of its own (command, sqlite, python)."""
        if not self.differential or self._listed:
            return
        parts = member.split("/")
        for depth, name in enumerate(parts):
            folder = "/".join(parts[:depth])
            code = b"Y" if depth == len(parts) - 1 else b"D"
            self._streamed.setdefault(folder, {})[os.fsencode(name)] = code

    def close(self) -> None:
        """A differential's dumpdirs of the folders the source's members implied (written after them, so that
        tar -G -x removes from each folder what the full had and this run did not write)."""
        for folder, names in sorted(self._streamed.items(), reverse=True):
            self._writer.write_dumpdir(self._full(folder), 0o700, os.geteuid(), os.getegid(), time.time(),
                                       dumpdir([(name, code) for name, code in names.items()]))
        self._streamed.clear()

    def warn(self, member: str, message: str) -> None:
        self._writer.warn(self._full(member), message)

    def check_cancel(self) -> None:
        self._writer.check_cancel()
