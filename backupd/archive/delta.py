"""Delta files: a changed file matching `delta_files` is stored in a differential as the ranges of it that
differ from the full's copy (extents), each a member `.backupd-delta/PATH@OFFSET` holding the bytes to write
at that offset; restored with the standard tools by writing each over the full's copy, which the two tar
steps left at PATH (`dd if=EXTENT of=PATH bs=1M seek=OFFSET oflag=seek_bytes conv=notrunc`).

Which ranges differ is told from the full's manifest alone: for such files it lists a 128-bit BLAKE2b of
every 1 MiB block ("blocks"); a block whose hash differs is an extent, and so is what the file grew by. A
full made before blocks were listed only allows a file that grew (its start checked against the full's
sha256). A file that shrank, or whose extents would be over half of it, is stored whole.

Why not `zstd --patch-from` against the full's copy: it needs that copy, which is not on the machine (a log
appended to keeps it as its start, nothing else does), and making and applying it held the full's copy and
the file in memory (435-465 MiB for a 250 MB log, measured); extents stream."""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from hashlib import blake2b, sha256

from ..util.names import DELTA_DIR, DELTA_SUFFIX
from .base_index import BaseFile

BLOCK = 1 << 20             # the size of a listed block
DIGEST = 16                 # bytes of each block's BLAKE2b
MAX_SHARE = 0.5             # extents over this share of the file: stored whole
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Changes:
    """A delta file: the extents [(offset, size)] that differ from the full's copy, and the whole file's sha256
    and size when they were found (the bytes written later are hashed again)."""

    member: str             # the file's member name; each extent is delta_member(member, offset)
    extents: list
    sha256: str
    size: int


class BlockHashes:
    """The BLAKE2b of each BLOCK-sized block of a stream fed in pieces of any size."""

    def __init__(self) -> None:
        self.digests = bytearray()
        self._block, self._filled = blake2b(digest_size=DIGEST), 0

    def update(self, data) -> None:
        view, at = memoryview(data), 0
        while at < len(view):
            take = min(BLOCK - self._filled, len(view) - at)
            self._block.update(view[at:at + take])
            self._filled += take
            at += take
            if self._filled == BLOCK:
                self.digests += self._block.digest()
                self._block, self._filled = blake2b(digest_size=DIGEST), 0

    def hex(self) -> str:
        tail = self._block.digest() if self._filled else b""
        return (bytes(self.digests) + tail).hex()


def feeding(readinto, blocks: BlockHashes | None):
    """`readinto`, also feeding what it reads to `blocks` when given."""
    if blocks is None:
        return readinto

    def read(view) -> int:
        count = readinto(view)
        blocks.update(view[:count])
        return count
    return read


def delta_member(member: str, offset: int) -> str:
    return f"{DELTA_DIR}/{member}{DELTA_SUFFIX}{offset}"


def glob_matcher(patterns) -> re.Pattern | None:
    """One regex for globs matched against the path inside the source or against the base name."""
    cleaned = [p.strip().strip("/") for p in patterns if p.strip().strip("/")]
    return re.compile("|".join(fnmatch.translate(p) for p in cleaned)) if cleaned else None


class DeltaMaker:
    """Tells which files are delta files, and which ranges of a changed one differ from the full's copy."""

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
             known: BaseFile) -> Changes | None:
        """The extents of a file that changed from the full's copy `known`; None: store it whole."""
        if known.size == 0 or st.st_size < known.size:
            return None
        try:
            fd = os.open(entry, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            found = _compare(fd, known, st.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        if found is None:
            return None
        extents, digest = found
        if sum(size for _, size in extents) > st.st_size * MAX_SHARE:
            return None
        self.made += 1
        return Changes(member, extents, digest, st.st_size)


def _compare(fd: int, known: BaseFile, size: int) -> tuple[list, str] | None:
    """([(offset, size)] differing from the full's copy, the sha256 of the file's first `size` bytes); None
    when the full lists no blocks and the file is not its copy followed by more."""
    listed = bytes.fromhex(known.blocks) if known.blocks else None
    whole, prefix, extents, offset = sha256(), sha256(), [], 0
    while offset < size:
        block = os.pread(fd, min(BLOCK, size - offset), offset)
        if not block:
            return None                 # shrank meanwhile
        whole.update(block)
        inside = block[:max(0, known.size - offset)]        # the part the full's copy had
        index = offset // BLOCK
        if listed is None:
            prefix.update(inside)
        elif inside and blake2b(inside, digest_size=DIGEST).digest() != listed[index * DIGEST:(index + 1) * DIGEST]:
            _add(extents, offset, len(inside))
        if len(inside) < len(block):
            _add(extents, offset + len(inside), len(block) - len(inside))
        offset += len(block)
    if listed is None and prefix.hexdigest() != known.sha256:
        return None
    return extents, whole.hexdigest()


def _add(extents: list, offset: int, size: int) -> None:
    """Append an extent, merged with the last one when they touch."""
    if extents and extents[-1][0] + extents[-1][1] == offset:
        extents[-1] = (extents[-1][0], extents[-1][1] + size)
    else:
        extents.append((offset, size))
