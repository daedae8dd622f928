"""The members only a differential has: directories with their GNU dumpdir, and delta files' changed ranges."""
from __future__ import annotations

import os
import time
from hashlib import sha256

from . import tarheader as th
from .delta import BLOCK, Extents, delta_member
from .differ import stat_fields
from .inputs import shown_path


class DifferentialMembers:
    """ArchiveWriter's differential half (it uses the writer's stream, headers, manifest and counters)."""

    def _differential_directory(self, name: str, st: os.stat_result, listing: list, dir_fd: int | None) -> dict:
        data, kept, deltas = self.differ.listing(name + "/", listing, dir_fd)
        self.write_dumpdir(name, st.st_mode, st.st_uid, st.st_gid, st.st_mtime, data)
        stats = dict(listing)
        for entry, known in kept.items():
            self._manifest.file(f"{name}/{entry}", known.size, known.sha256, stat_fields(stats[entry]), "full")
        for entry, known in deltas.items():
            self._write_delta(f"{name}/{entry}", entry, dir_fd, known, stats[entry])
        return {**kept, **deltas}

    def _write_delta(self, name: str, entry: str, dir_fd: int | None, known, st: os.stat_result) -> None:
        """A delta file, read once: each run that differs from the full's copy `known` as its own member, the
        manifest's entry naming them. A file gone by now has no entry (a restore then drops the full's copy)."""
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            return self.warn(name, f"{shown_path(entry, dir_fd)} cannot be read any more ({exc.strerror}); "
                                   "not archived")
        try:
            extents = Extents(known, lambda offset, data: self._extent(name, offset, data))
            self._read_blocks(name, entry, dir_fd, fd, st.st_size, extents)
            found, digest = extents.finish(lambda offset, size: os.pread(fd, size, offset).ljust(size, b"\0"))
        finally:
            os.close(fd)
        self._manifest.file(name, st.st_size, digest, stat_fields(st), delta={"extents": found})

    def _read_blocks(self, name: str, entry: str, dir_fd: int | None, fd: int, size: int, extents) -> None:
        """Feed the file's first `size` bytes to `extents` block by block (zeros where it shrank meanwhile)."""
        offset = 0
        while offset < size:
            self.check_cancel()
            block = os.pread(fd, min(BLOCK, size - offset), offset)
            if len(block) < min(BLOCK, size - offset):
                self.warn(name, f"{shown_path(entry, dir_fd)} shrank while being read; padded with zeros to "
                                f"{size} bytes")
                block = block.ljust(min(BLOCK, size - offset), b"\0")
            extents.feed(offset, block)
            self.bytes_in += len(block)
            offset += len(block)

    def _extent(self, name: str, offset: int, data: bytes) -> dict:
        """One changed run as member DELTA_DIR/<name>@<offset>; its manifest entry."""
        member = delta_member(name, offset)
        self._stream.write(self._headers.header(member, th.REGULAR, 0o600, self._uid, self._gid, len(data),
                                                time.time()))
        self._stream.write(data)            # not joined with the header: a run is up to 8 MiB
        self._stream.write(th.padding(len(data)))
        self.members += 1
        return {"member": member, "offset": offset, "size": len(data), "sha256": sha256(data).hexdigest()}

    def write_dumpdir(self, name: str, mode: int, uid: int, gid: int, mtime: float, data: bytes) -> None:
        """A directory with its GNU dumpdir (a pax GNU.dumpdir record, as GNU tar writes in POSIX format):
        the names it must hold."""
        self._stream.write(self._headers.header(name + "/", th.DIRECTORY, mode, uid, gid, 0, mtime,
                                                pax=((th.DUMPDIR, data),)))
        self._manifest.directory(name)
        self.members += 1
