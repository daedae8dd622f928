"""What a source writes into: a MemberSink bound to one source's folder of the archive."""
from __future__ import annotations

import os
from typing import BinaryIO, Protocol


class MemberWriter(Protocol):
    """The archive writer's side of a sink (ArchiveWriter); names here are full member names."""

    def write_directory(self, member: str, st: os.stat_result) -> None: ...
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

    def _full(self, member: str) -> str:
        return self._prefix + member if member else self._source

    def add_directory(self, member: str, st: os.stat_result) -> None:
        self._writer.write_directory(self._full(member), st)

    def add_file(self, member: str, path: str, st: os.stat_result | None, *, dir_fd: int | None = None) -> None:
        """`path` is relative to `dir_fd` when given (as os.open's dir_fd)."""
        self._writer.write_file(self._prefix + member, path, st, dir_fd)

    def add_files(self, entries: list, *, dir_fd: int | None = None) -> None:
        """add_file for each (member, entry, st) of `entries`, in one call: the fast path for many files."""
        self._writer.write_files(self._prefix, entries, dir_fd)

    def add_symlink(self, member: str, target: str, st: os.stat_result) -> None:
        self._writer.write_symlink(self._prefix + member, target, st)

    def add_stream(self, member: str, stream: BinaryIO, size: int, mode: int = 0o600,
                   mtime: float | None = None) -> None:
        self._writer.write_stream(self._prefix + member, stream, size, mode, mtime)

    def warn(self, member: str, message: str) -> None:
        self._writer.warn(self._full(member), message)

    def check_cancel(self) -> None:
        self._writer.check_cancel()
