"""The Source protocol: a source writes its members into an archive sink under `<source name>/`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Protocol

from ..archive.errors import SourceError, WriteError

__all__ = ["MemberSink", "Source", "SourceError", "WriteError"]   # WriteError: the sink's own, never a source's


class MemberSink(Protocol):
    """What the archive writer offers a source (archive.sink.SourceSink). Member names are relative to the
    source's folder. Its methods raise WriteError when the archive cannot be written: a source lets it pass."""

    differential: bool      # writing a differential: add_directory wants each directory's listing
    def add_directory(self, member: str, st: os.stat_result, listing: list | None = None,
                      dir_fd: int | None = None) -> dict:
        """A directory; in a differential, `listing` [(entry name, lstat)] is every entry it holds: returns
        {entry name: ...} of the files kept from the full, which the source must not add."""
    def add_file(self, member: str, path: str, st: os.stat_result | None, *, dir_fd: int | None = None) -> None:
        """Read `path` (relative to `dir_fd` when given) into the archive; `st=None`: the writer stats the
        open file. A file that changes or vanishes while read is a warning, and the tar stays valid."""
    def add_files(self, entries: list[tuple[str, str, os.stat_result | None]], *,
                  dir_fd: int | None = None) -> None:
        """add_file for a batch of small files, each (member, entry name relative to `dir_fd`, stat or None):
        the fast path for trees of many tiny files."""
    def add_symlink(self, member: str, target: str, st: os.stat_result) -> None: ...
    def add_stream(self, member: str, stream: BinaryIO, size: int, mode: int = 0o600,
                   mtime: float | None = None) -> None:
        """Copy exactly `size` bytes from `stream`."""
    def warn(self, member: str, message: str) -> None:
        """Record a non-fatal problem in the manifest and the log."""
    def check_cancel(self) -> None: ...


class Source(Protocol):
    name: str

    def write(self, sink: MemberSink, workdir: Path) -> None:
        """Take a fresh snapshot and write it; `workdir` is private scratch space removed after the run."""
