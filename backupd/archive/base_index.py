"""The full's MANIFEST.json as a compact index: what a differential compares each file with.

Memory stays small at any file count: a name is kept as its 64-bit hash (a dict key) and its record (size,
mode, uid, gid, mtime, ctime, sha256) as 68 packed bytes; 200k files take about 30 MiB. Two names with the
same 64-bit hash would also need the same size, owner, mode and times to be mistaken for one another."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator


_RECORD_SIZE = 8 * 3 + 4 * 3 + 32
PARSE_LINES = 2000


class BaseError(Exception):
    """The full's manifest cannot be read; the message is one line."""


@dataclass(frozen=True, slots=True)
class BaseFile:
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    ctime_ns: int
    sha256: str
    blocks: str = ""            # hex BLAKE2b of each 1 MiB block, listed for delta files


def name_key(name: str) -> int:
    return int.from_bytes(blake2b(name.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


def _pack(size: int, stat: list, sha256: str) -> bytes:
    mode, uid, gid, mtime_ns, ctime_ns = stat
    return (size.to_bytes(8, "little") + mtime_ns.to_bytes(8, "little", signed=True)
            + ctime_ns.to_bytes(8, "little", signed=True) + mode.to_bytes(4, "little")
            + uid.to_bytes(4, "little") + gid.to_bytes(4, "little") + bytes.fromhex(sha256))


class BaseIndex:
    """Regular files of a full's manifest that carry `stat`, looked up by member name."""

    def __init__(self, entries: Iterable[dict], header: dict | None = None) -> None:
        self.header = header if header is not None else {}     # filled as `entries` is read
        offsets: dict[int, int] = {}        # name hash -> its record's offset in `records`
        blocks: dict[int, str] = {}         # name hash -> its blocks' hashes (delta files only)
        records = bytearray()
        for entry in entries:
            if entry.get("type", "file") == "file" and isinstance(entry.get("stat"), list):
                try:
                    record = _pack(entry["size"], entry["stat"], entry["sha256"])
                except (KeyError, TypeError, ValueError, OverflowError):
                    raise BaseError(f"the full's manifest has a malformed entry for {entry.get('name')!r}") \
                        from None
                key = name_key(entry["name"])
                offsets[key] = len(records)
                records += record
                if isinstance(entry.get("blocks"), str):
                    blocks[key] = entry["blocks"]
        self._offsets, self._records, self._blocks = offsets, records, blocks
        self.files = len(offsets)

    def get(self, name: str) -> BaseFile | None:
        key = name_key(name)
        at = self._offsets.get(key)
        if at is None:
            return None
        raw = self._records[at:at + _RECORD_SIZE]
        little = int.from_bytes
        return BaseFile(size=little(raw[0:8], "little"), mtime_ns=little(raw[8:16], "little", signed=True),
                        ctime_ns=little(raw[16:24], "little", signed=True), mode=little(raw[24:28], "little"),
                        uid=little(raw[28:32], "little"), gid=little(raw[32:36], "little"),
                        sha256=raw[36:68].hex(), blocks=self._blocks.get(key, ""))

    @classmethod
    def load(cls, path: Path) -> "BaseIndex":
        """From a manifest file as the writer lays it out (plain, or zstd-compressed if named *.zst)."""
        import zstandard
        try:
            with open(path, "rb") as raw:
                if path.name.endswith(".zst"):
                    with zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                        return cls.read(io.BufferedReader(stream, 1 << 20))
                return cls.read(raw)
        except OSError as exc:
            raise BaseError(f"cannot read the full's manifest {path}: {exc.strerror or exc}") from None
        except (ValueError, EOFError, zstandard.ZstdError) as exc:
            raise BaseError(f"the full's manifest {path} is damaged: {exc}") from None

    @classmethod
    def read(cls, stream: BinaryIO) -> "BaseIndex":
        header: dict = {}
        entries = _members(stream, header)
        return cls(entries, header)


def _members(stream: BinaryIO, header: dict) -> Iterator[dict]:
    """Member entries, one per line as the writer puts them; the header's scalar fields go into `header`."""
    lines = iter(stream)
    for line in lines:
        if line.startswith(b'"members": ['):
            break
        field = line.strip().removeprefix(b"{").removesuffix(b",")
        if field.startswith(b'"'):
            try:
                header.update(json.loads(b"{" + field + b"}"))
            except ValueError:
                pass
    else:
        raise BaseError("the full's manifest has no members list")
    block = []
    for line in lines:
        if line in (b"],\n", b"]\n", b"],", b"]"):
            break
        block.append(line.rstrip().removesuffix(b","))
        if len(block) >= PARSE_LINES:
            yield from _parsed(block)
    yield from _parsed(block)


def _parsed(block: list[bytes]) -> list[dict]:
    try:
        values = json.loads(b"[" + b",".join(block) + b"]")
    except ValueError:
        raise BaseError("the full's manifest is not one member per line as backupd writes it") from None
    block.clear()
    return values

