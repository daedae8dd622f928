"""The members only a differential has: directories with their GNU dumpdir, and delta files' changed ranges."""
from __future__ import annotations

import os
import time

from . import tarheader as th
from .delta import delta_member
from .differ import stat_fields


class DifferentialMembers:
    """ArchiveWriter's differential half (it uses the writer's stream, headers, manifest and counters)."""

    def _differential_directory(self, name: str, st: os.stat_result, listing: list, dir_fd: int | None) -> dict:
        data, kept, deltas = self.differ.listing(name + "/", listing, dir_fd)
        self.write_dumpdir(name, st.st_mode, st.st_uid, st.st_gid, st.st_mtime, data)
        stats = dict(listing)
        for entry, known in kept.items():
            self._manifest.file(f"{name}/{entry}", known.size, known.sha256, stat_fields(stats[entry]), "full")
        for entry, changes in deltas.items():
            self._write_delta(f"{name}/{entry}", entry, dir_fd, changes, stats[entry])
        return {**kept, **deltas}

    def _write_delta(self, name: str, entry: str, dir_fd: int | None, changes, st: os.stat_result) -> None:
        """A delta file's changed ranges, each its own member; the manifest's entry is the file's, naming them."""
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            extents = [self._extent(name, fd, offset, size) for offset, size in changes.extents]
        finally:
            os.close(fd)
        self._manifest.file(name, changes.size, changes.sha256, stat_fields(st), delta={"extents": extents})

    def _extent(self, name: str, fd: int, offset: int, size: int) -> dict:
        member = delta_member(name, offset)
        self._stream.write(self._headers.header(member, th.REGULAR, 0o600, self._uid, self._gid, size,
                                                time.time()))
        position = [offset]

        def readinto(view) -> int:
            count = os.preadv(fd, [view], position[0])
            position[0] += count
            return count
        digest = self._copy(member, name, readinto, size)
        self.members += 1
        return {"member": member, "offset": offset, "size": size, "sha256": digest}

    def write_dumpdir(self, name: str, mode: int, uid: int, gid: int, mtime: float, data: bytes) -> None:
        """A directory with its GNU dumpdir (a pax GNU.dumpdir record, as GNU tar writes in POSIX format):
        the names it must hold."""
        self._stream.write(self._headers.header(name + "/", th.DIRECTORY, mode, uid, gid, 0, mtime,
                                                pax=((th.DUMPDIR, data),)))
        self._manifest.directory(name)
        self.members += 1
