"""A backupd archive read as a stream: compressed bytes (hashed as read) -> zstd -> tar members, each
member's data handed out in pieces and hashed as it is read. Nothing is buffered beyond one chunk."""
from __future__ import annotations

import hashlib
from typing import BinaryIO, Callable, Iterable, Iterator

from . import tarparse as tp
from .feed import Feeder
from .tarparse import BLOCK, ArchiveError, Member

__all__ = ["ArchiveError", "ArchiveReader", "Member"]

MAX_EXTENDED = 1 << 20          # a pax or GNU long-name header larger than this is refused


class ArchiveReader:
    """Iterate over the members; read the current one's data with chunks() or skip() it (what is left
    unread is skipped, and still hashed, when the next member is taken). After the iteration, `sha256` is
    the hex digest of the whole compressed input. `progress(bytes_read)` is called from the decompression
    thread. With `hash_input` False the input's sha256 is not computed (the caller hashes the stored bytes)."""

    def __init__(self, source: BinaryIO | Iterable[bytes], *, progress: Callable[[int], None] | None = None,
                 hash_input: bool = True) -> None:
        self._feed = Feeder(source, progress, hash_input)
        self._buf = memoryview(b"")
        self._pos = 0
        self.offset = 0                 # tar bytes consumed so far
        self._remaining = 0             # data bytes of the current member not yet read
        self._padding = 0
        self._member: Member | None = None
        self._digest = None
        self._globals: dict[str, bytes] = {}
        self.finished = False

    @property
    def sha256(self) -> str:
        """Of the compressed input read so far: all of it once the iteration ended (or drain_input())."""
        return self._feed.input.sha.hexdigest()

    @property
    def bytes_in(self) -> int:
        return self._feed.input.count

    def close(self) -> None:
        """Stop the decompression thread (also done when the iteration ends)."""
        self._feed.close()

    def __enter__(self) -> "ArchiveReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[Member]:
        try:
            while (member := self._next_member()) is not None:
                yield member
            self._drain()
        except ArchiveError:
            self.drain_input()
            raise
        finally:
            self._feed.close()

    # -- member data --------------------------------------------------------------------------------
    def chunks(self) -> Iterator[memoryview]:
        """The current member's data in pieces of at most one chunk (1 MiB), each valid until the next."""
        while self._remaining:
            piece = self._piece(self._remaining)
            self._remaining -= len(piece)
            self._digest.update(piece)
            yield piece
        self.skip()

    def skip(self) -> None:
        """Read (and hash) what is left of the current member's data; its sha256 is then set."""
        member = self._member
        if member is None and not self._padding:
            return
        if member is not None and member.sha256 is None and self._digest is not None:
            while self._remaining:
                piece = self._piece(self._remaining)
                self._remaining -= len(piece)
                self._digest.update(piece)
            member.sha256 = self._digest.hexdigest()
        self._skip(self._padding)
        self._padding = 0
        self._member = self._digest = None

    # -- headers --------------------------------------------------------------------------------------
    def _next_member(self) -> Member | None:
        self.skip()
        extended: dict[str, bytes] = dict(self._globals)
        while True:
            offset = self.offset
            block = bytes(self._exactly(BLOCK, "a tar header"))
            if tp.is_zero(block):
                if not tp.is_zero(bytes(self._exactly(BLOCK, "the end-of-archive marker"))):
                    raise ArchiveError(f"a lone zero block at offset {offset} is followed by data")
                return None
            flag, fields = tp.parse_block(block, offset)
            kind = tp.EXTENDED.get(flag)
            if kind is None:
                break
            body = self._extended_body(fields["size"], kind)
            if kind == "pax":
                extended.update(tp.pax_records(body))
            elif kind == "pax-global":
                self._globals.update(tp.pax_records(body))
                extended.update(self._globals)
            else:
                key = "path" if kind == "gnu-longname" else "linkpath"
                extended[key] = body.split(b"\x00", 1)[0]
        sparse = tp.apply_extended(fields, extended)
        member = tp.member_of(flag, fields, sparse, extended.get(tp.DUMPDIR_KEY))
        self._member, self._digest = member, hashlib.sha256()
        self._remaining, self._padding = member.size, -member.size % BLOCK
        return member

    def _extended_body(self, size: int, kind: str) -> bytes:
        if not 0 <= size <= MAX_EXTENDED:
            raise ArchiveError(f"{kind} header of {size} bytes at offset {self.offset} is too large")
        body = bytes(self._exactly(size, f"a {kind} header")) if size else b""
        self._skip(-size % BLOCK)
        return body

    # -- the decompressed byte stream --------------------------------------------------------------
    def _fill(self, what: str) -> None:
        data = self._feed.next()
        if not data:
            name = f" in member {self._member.name!r}" if self._member else ""
            raise ArchiveError(f"archive is truncated: end of data while reading {what}{name}")
        self._buf, self._pos = memoryview(data), 0

    def _piece(self, limit: int) -> memoryview:
        """Up to `limit` bytes from the current chunk (refilling it when empty)."""
        if self._pos >= len(self._buf):
            self._fill("member data")
        start = self._pos
        end = min(start + limit, len(self._buf))
        self._pos = end
        self.offset += end - start
        return self._buf[start:end]

    def _exactly(self, size: int, what: str) -> memoryview | bytes:
        if len(self._buf) - self._pos >= size:
            start = self._pos
            self._pos += size
            self.offset += size
            return self._buf[start:self._pos]
        parts, need = [], size
        while need:
            if self._pos >= len(self._buf):
                self._fill(what)
            parts.append(self._piece(need))
            need -= len(parts[-1])
        return b"".join(parts)

    def _skip(self, size: int) -> None:
        while size:
            size -= len(self._piece(size))

    def _drain(self) -> None:
        """After the end-of-archive marker: only zeros may follow (tar pads to its record size); reading
        to the end checks the zstd data and hashes all input."""
        rest = bytes(self._buf[self._pos:])
        while rest:
            if rest.count(0) != len(rest):
                raise ArchiveError(f"unexpected data after the end of the archive (offset {self.offset})")
            self.offset += len(rest)
            rest = self._feed.next()
        self.finished = True

    def drain_input(self) -> None:
        """Hash the rest of a bad archive's input, so its sha256 can still be compared with the record."""
        self._feed.drain()
