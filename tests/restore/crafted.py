"""Hand-made archives for the restore tests: raw tar members written with Python's tarfile (never used to
extract), a MANIFEST.json that matches them, zstd-compressed."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import zstandard

from backupd.archive.manifest import FORMAT

MTIME = 1_700_000_000
_KINDS = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
          tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
          tarfile.FIFOTYPE: "fifo"}


def member(name: str, type_=tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = type_, mode, MTIME, link
    info.size = len(data) if type_ == tarfile.REGTYPE else 0
    return info, data


def file(name: str, data: bytes = b"data\n", mode: int = 0o644):
    return member(name, data=data, mode=mode)


def directory(name: str, mode: int = 0o755):
    return member(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str):
    return member(name, tarfile.SYMTYPE, mode=0o777, link=target)


def hardlink(name: str, target: str):
    return member(name, tarfile.LNKTYPE, link=target)


def manifest_entry(info: tarfile.TarInfo, data: bytes) -> dict:
    entry = {"name": info.name.rstrip("/"), "type": _KINDS[info.type], "size": info.size}
    if info.type == tarfile.REGTYPE:
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    if info.linkname:
        entry["target"] = info.linkname
    return entry


def craft(path: Path, members, manifest: list[dict] | None = None) -> Path:
    """Write `members` ((TarInfo, data) pairs) and a MANIFEST.json (by default the one that matches)."""
    entries = [manifest_entry(info, data) for info, data in members] if manifest is None else manifest
    document = json.dumps({"format": FORMAT, "job": "crafted", "members": entries, "warnings": [],
                           "member_count": len(entries)}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in [*members, member("MANIFEST.json", data=document)]:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return path
