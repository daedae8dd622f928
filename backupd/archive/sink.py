"""What a source writes into: a MemberSink bound to one source's folder, and helpers about inputs."""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .writer import ArchiveWriter


class SourceSink:
    """The MemberSink one source writes into: member names are prefixed with '<source name>/'."""

    def __init__(self, writer: ArchiveWriter, source: str) -> None:
        self._writer = writer
        self._source = source
        self._prefix = source + "/"

    def _full(self, name: str) -> str:
        return self._prefix + name if name else self._source

    def add_directory(self, name: str, st: os.stat_result) -> None:
        self._writer.write_directory(self._full(name), st)

    def add_file(self, name: str, path: str, st: os.stat_result, *, dir_fd: int | None = None) -> None:
        """`path` is relative to `dir_fd` when given (as os.open's dir_fd)."""
        self._writer.write_file(self._prefix + name, path, st, dir_fd)

    def add_files(self, entries: list, *, dir_fd: int | None = None) -> None:
        """add_file for each (name, path, st) of `entries`, in one call: the fast path for many files."""
        self._writer.write_files(self._prefix, entries, dir_fd)

    def add_symlink(self, name: str, target: str, st: os.stat_result) -> None:
        self._writer.write_symlink(self._prefix + name, target, st)

    def add_stream(self, name: str, stream: BinaryIO, size: int, mode: int = 0o600,
                   mtime: float | None = None) -> None:
        self._writer.write_stream(self._prefix + name, stream, size, mode, mtime)

    def warn(self, name: str, message: str) -> None:
        self._writer.warn(self._full(name), message)

    def check_cancel(self) -> None:
        self._writer.check_cancel()


# a name that fits a plain ustar name field and a JSON string without escaping: at most 100 printable
# ASCII characters, none of them '"' or '\\'
PLAIN_NAME = re.compile(r'[ !#-\[\]-~]{0,100}')


def plain_name(name: str) -> bool:
    """True if `name` fits a plain ustar name field and a JSON string without escaping."""
    return PLAIN_NAME.fullmatch(name) is not None


def shown_path(path: str, dir_fd: int | None) -> str:
    """The full path of `path` relative to `dir_fd`, for messages (only built when one is needed)."""
    if dir_fd is None or path.startswith("/"):
        return path
    try:
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    except OSError:
        return path


def readinto_from_read(stream: BinaryIO):
    """A readinto(view) for streams that only offer read(n)."""
    def readinto(view: memoryview) -> int:
        data = stream.read(len(view))
        view[:len(data)] = data
        return len(data)
    return readinto
