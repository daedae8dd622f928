"""The members only a differential has: directories with their GNU dumpdir, and delta files' appended bytes."""
from __future__ import annotations

import os
import time

from . import tarheader as th
from .differ import stat_fields


class DifferentialMembers:
    """ArchiveWriter's differential half (it uses the writer's stream, headers, manifest and counters)."""

    def _differential_directory(self, name: str, st: os.stat_result, listing: list, dir_fd: int | None) -> dict:
        data, kept, deltas = self.differ.listing(name + "/", listing, dir_fd)
        self.write_dumpdir(name, st.st_mode, st.st_uid, st.st_gid, st.st_mtime, data)
        stats = dict(listing)
        for entry, known in kept.items():
            self._manifest.file(f"{name}/{entry}", known.size, known.sha256, stat_fields(stats[entry]), "full")
        for entry, appended in deltas.items():
            self._write_delta(f"{name}/{entry}", entry, dir_fd, appended, stats[entry])
        return {**kept, **deltas}

    def _write_delta(self, name: str, entry: str, dir_fd: int | None, appended, st: os.stat_result) -> None:
        """A delta file's appended bytes as their own member; the manifest's entry is the file's, naming it."""
        self._stream.write(self._headers.header(appended.member, th.REGULAR, 0o600, self._uid, self._gid,
                                                appended.size, time.time()))
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            whole, position = appended.digest, [appended.offset]

            def readinto(view) -> int:
                count = os.preadv(fd, [view], position[0])
                whole.update(view[:count])
                position[0] += count
                return count
            tail = self._copy(appended.member, name, readinto, appended.size)
        finally:
            os.close(fd)
        self._manifest.file(name, appended.offset + appended.size, whole.hexdigest(), stat_fields(st),
                            delta={"member": appended.member, "offset": appended.offset, "size": appended.size,
                                   "sha256": tail})
        self.members += 1

    def write_dumpdir(self, name: str, mode: int, uid: int, gid: int, mtime: float, data: bytes) -> None:
        """A directory with its GNU dumpdir (a pax GNU.dumpdir record, as GNU tar writes in POSIX format):
        the names it must hold."""
        self._stream.write(self._headers.header(name + "/", th.DIRECTORY, mode, uid, gid, 0, mtime,
                                                pax=((th.DUMPDIR, data),)))
        self._manifest.directory(name)
        self.members += 1
