"""The members only a differential has: directories with their GNU dumpdir, and delta files' patches."""
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
        for entry, delta in deltas.items():
            self._write_delta(f"{name}/{entry}", delta, stats[entry])
        return {**kept, **deltas}

    def _write_delta(self, name: str, delta, st: os.stat_result) -> None:
        """A delta file's patch as its own member; the manifest's entry is the file's, naming the patch."""
        self._stream.write(self._headers.header(delta.member, th.REGULAR, 0o600, self._uid, self._gid,
                                                delta.size, time.time()))
        try:
            with open(delta.path, "rb") as patch:
                digest = self._copy(delta.member, str(delta.path), patch.readinto, delta.size)
        finally:
            delta.path.unlink(missing_ok=True)
        self._manifest.file(name, delta.file_size, delta.file_sha256, stat_fields(st),
                            delta={"member": delta.member, "size": delta.size, "sha256": digest})
        self.members += 1

    def write_dumpdir(self, name: str, mode: int, uid: int, gid: int, mtime: float, data: bytes) -> None:
        """A directory with its GNU dumpdir (a pax GNU.dumpdir record, as GNU tar writes in POSIX format):
        the names it must hold."""
        self._stream.write(self._headers.header(name + "/", th.DIRECTORY, mode, uid, gid, 0, mtime,
                                                pax=((th.DUMPDIR, data),)))
        self._manifest.directory(name)
        self.members += 1
