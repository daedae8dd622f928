"""Delta files: a file that only grew since the full (a log) is stored in a differential as what was appended,
restorable with the standard tools (`cat DIR/.backupd-delta/PATH.appended >> DIR/PATH`, the full's copy
being at PATH after the two tar steps).

The full's copy is not kept anywhere: a file that only grew starts with it, which is checked against the
sha256 in the full's manifest before anything is stored that way. A file that was rewritten, truncated or
rotated is stored whole.

Why not `zstd --patch-from` against the full's copy: for a file that only grew, the frame holds the same
appended bytes, compressed the same way, but making it and applying it needs the full's copy and the file in
memory (435-465 MiB for a 250 MB log, measured), where appending streams; and a file changed in place, the
case patching is for, cannot be patched without a copy of the full's version, which is not on the machine."""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from hashlib import sha256

from ..util.names import DELTA_DIR, DELTA_SUFFIX
from .base_index import BaseFile

BLOCK = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Appended:
    """A delta file's appended bytes: [offset, offset + size) of the file, `offset` being the full's size."""

    member: str             # its member name: DELTA_DIR/<member path><DELTA_SUFFIX>
    offset: int
    size: int
    digest: object          # sha256 of the file's first `offset` bytes (the full's copy), to be continued


def delta_member(member: str) -> str:
    return f"{DELTA_DIR}/{member}{DELTA_SUFFIX}"


def glob_matcher(patterns) -> re.Pattern | None:
    """One regex for globs matched against the path inside the source or against the base name."""
    cleaned = [p.strip().strip("/") for p in patterns if p.strip().strip("/")]
    return re.compile("|".join(fnmatch.translate(p) for p in cleaned)) if cleaned else None


class DeltaMaker:
    """Tells which changed files of a differential are stored as their appended bytes."""

    def __init__(self, patterns) -> None:
        self.matcher = glob_matcher(patterns)
        self.made = 0

    def wants(self, member: str) -> bool:
        """`member` is '<source>/<path>': its path or base name matches a delta glob."""
        if self.matcher is None:
            return False
        inside = member.split("/", 1)[-1]
        return bool(self.matcher.match(inside) or self.matcher.match(inside.rsplit("/", 1)[-1]))

    def make(self, member: str, entry: str, dir_fd: int | None, st: os.stat_result,
             known: BaseFile) -> Appended | None:
        """The appended part of a file that grew from the full's copy `known`; None: store it whole."""
        if not 0 < known.size < st.st_size:
            return None
        try:
            fd = os.open(entry, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            digest = _prefix_digest(fd, known.size)
        except OSError:
            return None
        finally:
            os.close(fd)
        if digest is None or digest.hexdigest() != known.sha256:
            return None
        self.made += 1
        return Appended(delta_member(member), known.size, st.st_size - known.size, digest)


def _prefix_digest(fd: int, size: int):
    """sha256 of the file's first `size` bytes; None if it is shorter now."""
    digest, offset = sha256(), 0
    while offset < size:
        block = os.pread(fd, min(BLOCK, size - offset), offset)
        if not block:
            return None
        digest.update(block)
        offset += len(block)
    return digest
