"""Backup sets made by hand for the restore tests: a full archive of one tree and a differential of a later
tree against it, in backupd's format (pax GNU.dumpdir folders, held files, appended deltas, a
MANIFEST.json of the complete state), written with our tarheader module, never with the real writer."""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
from pathlib import Path

import zstandard

from backupd.archive.manifest import FORMAT
from backupd.archive.tarheader import END_OF_ARCHIVE, HeaderBuilder, pax_records

DELTA_DIR = ".backupd-delta"


def write(root: Path, files: dict[str, bytes]) -> None:
    """Files (folders made as needed) under `root`."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def settle(root: Path, stamp: int) -> None:
    """Whole-second mtimes everywhere (a ustar header keeps seconds)."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.utime(Path(folder, name), (stamp, stamp), follow_symlinks=False)
    os.utime(root, (stamp, stamp))


def dumpdir_member(headers: HeaderBuilder, name: str, entries: bytes, mode: int = 0o755,
                   mtime: int = 1_700_000_000) -> bytes:
    """A folder with a GNU.dumpdir pax record (as GNU tar --format=posix -g writes it)."""
    body = pax_records([(b"GNU.dumpdir", entries)])
    return headers.header("././@PaxHeader", b"x", 0o644, 0, 0, len(body), 0, data=body) + \
        headers.header(name, b"5", mode, 0, 0, 0, mtime)


def compressed(path: Path, blocks: list[bytes]) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress(b"".join(blocks) + END_OF_ARCHIVE))
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(root: Path, name: str):
    """(member name, path, lstat) of `root` (named `name`) and everything below it, folders first, sorted."""
    st = root.lstat()
    yield name, root, st
    if stat.S_ISDIR(st.st_mode):
        for child in sorted(os.listdir(root)):
            yield from _walk(root / child, f"{name}/{child}")


def _identity(entry: dict) -> tuple:
    return entry["sha256"], entry["stat"][0], entry["stat"][3] // 10**9


class SetWriter:
    """write_full(tree) then write_differential(tree) of the same source name."""

    def __init__(self, work: Path, source: str = "src", delta_files: tuple[str, ...] = ()) -> None:
        self.work, self.source, self.delta_files = work, source, delta_files
        self.headers = HeaderBuilder()
        self.full_files: dict[str, tuple[str, Path]] = {}        # member -> (sha256, copy of the full's bytes)
        self.full_sha256 = ""
        work.mkdir(parents=True, exist_ok=True)

    def _manifest(self, entries: list[dict], **header) -> bytes:
        document = {"format": FORMAT, "job": "hand", **header, "members": entries, "warnings": [],
                    "member_count": len(entries)}
        data = json.dumps(document).encode()
        return self.headers.header("MANIFEST.json", b"0", 0o644, 0, 0, len(data), 1_700_000_000, data=data)

    def _entry(self, name: str, path: Path, st) -> tuple[dict, bytes | None]:
        if stat.S_ISDIR(st.st_mode):
            return {"name": name, "type": "dir", "size": 0}, None
        if stat.S_ISLNK(st.st_mode):
            return {"name": name, "type": "symlink", "size": 0, "target": os.readlink(path)}, None
        data = path.read_bytes()
        return {"name": name, "type": "file", "size": len(data), "sha256": _sha(data),
                "stat": [stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns]}, data

    def _member(self, name: str, path: Path, st, data: bytes | None) -> bytes:
        mode, mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        if stat.S_ISLNK(st.st_mode):
            return self.headers.header(name, b"2", 0o777, 0, 0, 0, mtime, linkname=os.readlink(path))
        return self.headers.header(name, b"0", mode, 0, 0, len(data), mtime, data=data)

    def write_full(self, root: Path, path: Path, kind: str = "full") -> Path:
        blocks, entries = [], []
        for name, item, st in _walk(root, self.source):
            entry, data = self._entry(name, item, st)
            entries.append(entry)
            if stat.S_ISDIR(st.st_mode):
                blocks.append(self.headers.header(name + "/", b"5", stat.S_IMODE(st.st_mode), 0, 0, 0,
                                                  int(st.st_mtime)))
                continue
            blocks.append(self._member(name, item, st, data))
            if data is not None:
                copy = self.work / f"full-copy-{len(self.full_files)}"
                copy.write_bytes(data)
                self.full_files[name] = (_identity(entry), copy)
        blocks.append(self._manifest(entries, kind=kind, run_id="f" * 32))
        compressed(path, blocks)
        self.full_sha256 = _sha(path.read_bytes())
        return path

    def write_differential(self, root: Path, path: Path, base_name: str = "full.tar.zst", drop: tuple = (),
                           add: tuple = ()) -> Path:
        """`drop`: names left out of the manifest (not of the folders' dumpdirs); `add`: extra entries."""
        blocks, entries, deltas = [], [], []
        for name, item, st in _walk(root, self.source):
            entry, data = self._entry(name, item, st)
            if name not in drop:
                entries.append(entry)
            if stat.S_ISDIR(st.st_mode):
                blocks.append(dumpdir_member(self.headers, name + "/", self._dumpdir(name, item),
                                             stat.S_IMODE(st.st_mode), int(st.st_mtime)))
            elif data is None or self._held(name, entry) == "Y":
                blocks.append(self._member(name, item, st, data))
            elif self._held(name, entry) == "delta":
                delta = self._delta(name, item)
                offset = entry["size"] - len(delta)
                extent = {"member": f"{DELTA_DIR}/{name}@{offset}", "offset": offset, "size": len(delta),
                          "sha256": _sha(delta)}
                entry["delta"] = {"extents": [extent]}
                deltas.append(self.headers.header(extent["member"], b"0", stat.S_IMODE(st.st_mode), 0, 0,
                                                  len(delta), int(st.st_mtime), data=delta))
            else:
                entry["in"] = "full"
        blocks += deltas
        blocks.append(self._manifest(entries + list(add), kind="differential", run_id="d" * 32, base={
            "archive": base_name, "run_id": "f" * 32, "sha256": self.full_sha256, "size": 0}))
        return compressed(path, blocks)

    def _held(self, name: str, entry: dict) -> str:
        """Y (bytes in the differential), N (the full's), or delta."""
        known = self.full_files.get(name)
        if known is None:
            return "Y"
        if known[0] == _identity(entry):
            return "N"          # same bytes, mode and mtime: kept from the full
        return "delta" if any(fnmatch.fnmatch(name, glob) for glob in self.delta_files) else "Y"

    def _dumpdir(self, name: str, folder: Path) -> bytes:
        out = b""
        for child in sorted(os.listdir(folder)):
            path, member = folder / child, f"{name}/{child}"
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                control = "D"
            elif stat.S_ISLNK(st.st_mode):
                control = "Y"
            else:
                control = "N" if self._held(member, self._entry(member, path, st)[0]) != "Y" else "Y"
            out += control.encode() + os.fsencode(child) + b"\x00"
        return out + b"\x00"

    def _delta(self, name: str, path: Path) -> bytes:
        """What the file grew by since the full's copy (which it must start with)."""
        full_copy = Path(self.full_files[name][1]).read_bytes()
        grown = path.read_bytes()
        assert grown.startswith(full_copy), f"{name} did not only grow"
        return grown[len(full_copy):]