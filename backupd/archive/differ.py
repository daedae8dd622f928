"""What a differential stores: each directory's GNU dumpdir, and whether a file is unchanged since the full.

A file is unchanged when its size, mode, owner and mtime are the full's and, with detect = "metadata", its
ctime too. Where only the ctime differs (a tree copied with its times, a chmod back and forth) or with
detect = "content", its bytes are hashed and compared with the full's sha256. Device and inode numbers
are never compared: a tree on a new file system or with new inodes is not stored again.

A file whose mtime is not older than the full's start (less a second) is hashed too: it may have been
written again within the same clock tick after the full read it, keeping its size and times ("racy" files,
as git calls them)."""
from __future__ import annotations

import os
import stat as st_
from datetime import datetime
from hashlib import sha256

from .base_index import BaseFile, BaseIndex
from .delta import DeltaMaker

HASH_BLOCK = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# dumpdir control bytes (GNU tar incremental format)
SUBDIR, IN_ARCHIVE, KEPT = b"D", b"Y", b"N"


def stat_fields(st: os.stat_result) -> str:
    """The manifest's "stat": [mode, uid, gid, mtime_ns, ctime_ns] as JSON."""
    return f"[{st.st_mode & 0o7777}, {st.st_uid}, {st.st_gid}, {st.st_mtime_ns}, {st.st_ctime_ns}]"


class Differ:
    """Decides, against a full's BaseIndex, which regular files a differential must store."""

    def __init__(self, base: BaseIndex, detect: str = "metadata", deltas: DeltaMaker | None = None) -> None:
        self.base = base
        self.deltas = deltas        # delta files: stored as the ranges that differ from the full's copy
        self.hash_all = detect == "content"
        self.hashed = 0             # files whose bytes were read to decide
        self.racy_from_ns = _racy_from(base.header.get("started"))

    def unchanged(self, member: str, st: os.stat_result, entry: str, dir_fd: int | None) -> BaseFile | None:
        """The full's record of `member` if the file is the same as there, else None."""
        known = self.base.get(member)
        if (known is None or known.size != st.st_size or known.mtime_ns != st.st_mtime_ns
                or known.mode != st.st_mode & 0o7777 or known.uid != st.st_uid or known.gid != st.st_gid):
            return None
        if known.ctime_ns == st.st_ctime_ns and not self.hash_all and known.mtime_ns < self.racy_from_ns:
            return known
        return known if self._digest(entry, dir_fd) == known.sha256 else None

    def _digest(self, entry: str, dir_fd: int | None) -> str | None:
        self.hashed += 1
        try:
            fd = os.open(entry, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None                 # stored (or warned about) by the ordinary path
        try:
            digest = sha256()
            while block := os.read(fd, HASH_BLOCK):
                digest.update(block)
            return digest.hexdigest()
        except OSError:
            return None
        finally:
            os.close(fd)

    def listing(self, prefix: str, entries: list[tuple[str, os.stat_result]],
                dir_fd: int | None) -> tuple[bytes, dict[str, BaseFile], dict[str, BaseFile]]:
        """(the directory's dumpdir, {entry name: the full's record} of its unchanged files, {entry name:
        the full's record} of its delta files); both are N in the dumpdir (the full's copy stays)."""
        kept: dict[str, BaseFile] = {}
        deltas: dict[str, BaseFile] = {}
        codes = []
        for name, st in entries:
            if st_.S_ISDIR(st.st_mode):
                code = SUBDIR
            elif st_.S_ISREG(st.st_mode) and (known := self.unchanged(prefix + name, st, name, dir_fd)):
                code, kept[name] = KEPT, known
            elif st_.S_ISREG(st.st_mode) and (delta := self._delta(prefix + name, st, name, dir_fd)):
                code, deltas[name] = KEPT, delta
            else:
                code = IN_ARCHIVE
            codes.append((os.fsencode(name), code))
        return dumpdir(codes), kept, deltas

    def _delta(self, member: str, st: os.stat_result, entry: str, dir_fd: int | None) -> BaseFile | None:
        """The full's record of a delta file (stored as extents over its copy), else None."""
        if self.deltas is None:
            return None
        known = self.base.get(member)
        return known if self.deltas.applies(member, st, known) else None


def _racy_from(started) -> int:
    """A second before the full started, in ns; 0 (every file hashed when its ctime matches) if unknown."""
    try:
        return int(datetime.fromisoformat(started).timestamp() - 1) * 1_000_000_000
    except (TypeError, ValueError):
        return 0


def dumpdir(codes: list[tuple[bytes, bytes]]) -> bytes:
    """A GNU dumpdir: per entry (sorted by name) its control byte, name and NUL; then a final NUL."""
    return b"".join(code + name + b"\x00" for name, code in sorted(codes)) + b"\x00"
