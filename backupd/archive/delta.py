"""Delta files: a growing file stored in a differential as a `zstd --patch-from` frame against its copy in
the full, restorable with the standard tool (`zstd -d --long=31 --patch-from=FULL_COPY DELTA -o FILE`).

The full's copy is not kept anywhere: a file that only grew since the full (a log) starts with it, which is
checked against the sha256 in the full's manifest before the first byte of the patch is made. A file that
was rewritten, truncated or rotated is stored whole. The delta is made by the zstd command in a child
process (it holds the full's copy and the file in memory, about twice the file's size, for a few seconds;
the daemon's memory stays flat); files above DELTA_MAX are stored whole."""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from ..util.names import DELTA_DIR, DELTA_SUFFIX
from .base_index import BaseFile

DELTA_MAX = 1 << 30         # larger files are stored whole (zstd's window, and the child's memory)
MIN_GROWTH_RATIO = 0.5      # a delta must be smaller than this share of the file to be worth its restore step
BLOCK = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Delta:
    path: Path              # the zstd frame, in the run's scratch folder
    size: int
    member: str             # its member name: DELTA_DIR/<member path><DELTA_SUFFIX>
    file_sha256: str        # of the file the frame restores (the bytes it was made from)
    file_size: int


def delta_member(member: str) -> str:
    return f"{DELTA_DIR}/{member}{DELTA_SUFFIX}"


def glob_matcher(patterns) -> re.Pattern | None:
    """One regex for globs matched against the path inside the source or against the base name."""
    cleaned = [p.strip().strip("/") for p in patterns if p.strip().strip("/")]
    return re.compile("|".join(fnmatch.translate(p) for p in cleaned)) if cleaned else None


class DeltaMaker:
    """Makes the deltas of one differential in `workdir` (the run's scratch folder)."""

    def __init__(self, patterns, workdir: Path, zstd: str | None = None) -> None:
        self.matcher = glob_matcher(patterns)
        self.workdir = Path(workdir)
        self.zstd = zstd or shutil.which("zstd")
        self.made = 0

    def wants(self, member: str) -> bool:
        """`member` is '<source>/<path>': its path or base name matches a delta glob."""
        if self.matcher is None or self.zstd is None:
            return False
        inside = member.split("/", 1)[-1]
        return bool(self.matcher.match(inside) or self.matcher.match(inside.rsplit("/", 1)[-1]))

    def make(self, member: str, entry: str, dir_fd: int | None, st: os.stat_result, known: BaseFile) -> Delta | None:
        """The delta of a file that grew from the full's copy `known`; None: store it whole."""
        size = st.st_size
        if not known.size <= size <= DELTA_MAX or known.size == 0:
            return None
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = self.workdir / f"delta-base-{self.made}"
        out = self.workdir / f"delta-{self.made}{DELTA_SUFFIX}"
        self.made += 1
        try:
            fd = os.open(entry, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if not _prefix_copy(fd, known, base):
                return None
            file_sha = self._compress(fd, base, out, size)
        finally:
            os.close(fd)
            base.unlink(missing_ok=True)
        if file_sha is None or out.stat().st_size > size * MIN_GROWTH_RATIO:
            out.unlink(missing_ok=True)
            return None
        return Delta(out, out.stat().st_size, delta_member(member), file_sha, size)

    def _compress(self, fd: int, base: Path, out: Path, size: int) -> str | None:
        """Feed exactly `size` bytes of the file to zstd --patch-from; their sha256, or None if zstd failed."""
        window = max(27, min(31, (size + 1).bit_length()))
        argv = [self.zstd, "-q", "-f", "-3", "--single-thread", f"--long={window}", f"--patch-from={base}",
                f"--stream-size={size}", "-o", str(out), "-"]
        digest = sha256()
        with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) as child:
            try:
                _feed(fd, size, digest, child.stdin)
            except (BrokenPipeError, OSError):
                child.kill()
                return None
            finally:
                try:
                    child.stdin.close()
                except OSError:
                    pass
        return digest.hexdigest() if child.returncode == 0 else None


def _prefix_copy(fd: int, known: BaseFile, base: Path) -> bool:
    """Copy the file's first `known.size` bytes to `base`; True if they are the full's copy (sha256)."""
    digest, left = sha256(), known.size
    with open(base, "wb") as out:
        while left:
            block = os.pread(fd, min(BLOCK, left), known.size - left)
            if not block:
                return False
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest() == known.sha256


def _feed(fd: int, size: int, digest, pipe) -> None:
    offset = 0
    while offset < size:
        block = os.pread(fd, min(BLOCK, size - offset), offset)
        if not block:
            block = bytes(min(BLOCK, size - offset))     # shrank meanwhile: padded, as the writer does
        digest.update(block)
        pipe.write(block)
        offset += len(block)

