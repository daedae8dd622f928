"""Delta files: a changed file matching `delta_files` is stored in a differential as the ranges of it that
differ from the full's copy (extents), each a member `.backupd-delta/PATH@OFFSET` holding the bytes to write
at that offset; restored with the standard tools by writing each over the full's copy, which the two tar
steps left at PATH (`dd if=EXTENT of=PATH bs=1M seek=OFFSET oflag=seek_bytes conv=notrunc`).

Which ranges differ is told from the full's manifest alone: for such files it lists a 128-bit BLAKE2b of
every 1 MiB block ("blocks"); a block whose hash differs is an extent, and so is what the file grew by. The
file is read once, after its folder's dumpdir: each block is compared as it is read, changed runs (up to
RUN_MAX) written as they end, and the file's sha256 is that of exactly what a restore makes (the full's
blocks found equal, and the extents written), so a file written to while it is read stays consistent. A
full made before blocks were listed allows a file that grew from its copy (its start checked against the
full's sha256; otherwise the whole file is one extent). A file that shrank is stored whole.

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
RUN_MAX = 8 << 20           # a run of changed bytes is written as one extent up to this size


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
    """Tells which files are delta files."""

    def __init__(self, patterns) -> None:
        self.matcher = glob_matcher(patterns)

    def wants(self, member: str) -> bool:
        """`member` is '<source>/<path>': its path or base name matches a delta glob."""
        if self.matcher is None:
            return False
        inside = member.split("/", 1)[-1]
        return bool(self.matcher.match(inside) or self.matcher.match(inside.rsplit("/", 1)[-1]))

    def applies(self, member: str, st: os.stat_result, known: BaseFile | None) -> bool:
        """A changed file stored as extents over the full's copy `known` (it must not have shrunk)."""
        return known is not None and 0 < known.size <= st.st_size and self.wants(member)


class Extents:
    """One delta file read block by block against the full's copy: feed() each block in order; `emit(offset,
    data)` writes a changed run as an extent member and returns its entry; finish() gives the extents and the
    sha256 of what a restore makes."""

    def __init__(self, known: BaseFile, emit) -> None:
        self.known, self.emit = known, emit
        self.listed = bytes.fromhex(known.blocks) if known.blocks else None
        self.whole, self.prefix = sha256(), sha256()
        self.extents: list[dict] = []
        self._run_at, self._run = 0, bytearray()

    def feed(self, offset: int, block: bytes) -> None:
        self.whole.update(block)
        old = block[:max(0, self.known.size - offset)]       # what the full's copy had at these offsets
        if self.listed is None:
            self.prefix.update(old)
        elif old and not self._same(offset // BLOCK, old):
            self._changed(offset, old)
        if len(old) < len(block):
            self._changed(offset + len(old), block[len(old):])

    def _same(self, index: int, old: bytes) -> bool:
        return blake2b(old, digest_size=DIGEST).digest() == self.listed[index * DIGEST:(index + 1) * DIGEST]

    def _changed(self, offset: int, data: bytes) -> None:
        if self._run and (self._run_at + len(self._run) != offset or len(self._run) >= RUN_MAX):
            self._flush()
        if not self._run:
            self._run_at = offset
        self._run += data

    def _flush(self) -> None:
        if self._run:
            self.extents.append(self.emit(self._run_at, self._run))     # written before it is cleared
            self._run.clear()

    def finish(self, read_again) -> tuple[list[dict], str]:
        """(extents, sha256 of the file as restored). Without listed blocks, a start that is not the full's
        copy is written too, read again with `read_again(offset, size)`."""
        self._flush()
        if self.listed is None and self.prefix.hexdigest() != self.known.sha256:
            for offset in range(0, self.known.size, RUN_MAX):
                self.extents.append(self.emit(offset, read_again(offset, min(RUN_MAX, self.known.size - offset))))
            self.extents.sort(key=lambda extent: extent["offset"])
        return self.extents, self.whole.hexdigest()
