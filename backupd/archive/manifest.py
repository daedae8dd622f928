"""MANIFEST.json, streamed to a scratch file as members are written: memory does not grow with file count."""
from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

from .errors import WriteError

FORMAT = "backupd-manifest/1"
BUFFER = 1 << 20


def _writes(method):
    """A ManifestWriter method whose OSErrors (a full disk) are WriteErrors naming the manifest file."""
    @functools.wraps(method)
    def guarded(self, *args, **keywords):
        try:
            return method(self, *args, **keywords)
        except OSError as exc:
            raise WriteError.of(exc, self.path) from exc
    return guarded


def quote(text: str) -> str:
    """A JSON string literal; the common plain-ASCII case skips the json module."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


class ManifestWriter:
    """Writes `{header..., "members": [...], "warnings": [...], totals}` incrementally to `path`."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        self._warnings_path = path.with_name(path.name + ".warnings")
        self.stream = open(path, "w", encoding="utf-8", buffering=BUFFER)
        self._warnings = None
        self._sep = "\n"
        self._warning_sep = "\n"
        self.count = 0          # member entries written (a differential's include those kept from the full)
        fields = {"format": FORMAT, **header}
        head = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in fields.items())
        self.stream.write("{" + head + ',\n"members": [')

    @_writes
    def file(self, name: str, size: int, sha256: str, stat: str = "", held: str = "", delta: dict | None = None,
             blocks: str = "") -> None:
        """`stat`: the file's [mode, uid, gid, mtime_ns, ctime_ns] as JSON; `held`: "full" when a
        differential keeps the full's bytes; `delta`: {"extents": [...]} written over the full's copy;
        `blocks`: the hex BLAKE2b of each 1 MiB block (a delta file in a full)."""
        extra = (f', "stat": {stat}' if stat else "") + (f', "in": "{held}"' if held else "")
        extra += (f', "delta": {json.dumps(delta)}' if delta is not None else "") + (
            f', "blocks": "{blocks}"' if blocks else "")
        self.stream.write(f'{self._sep}{{"name": {quote(name)}, "type": "file", "size": {size}, '
                         f'"sha256": "{sha256}"{extra}}}')
        self._sep = ",\n"
        self.count += 1

    @_writes
    def files(self, lines: list[str]) -> None:
        """Member entries already formatted as JSON objects; empties the list."""
        if lines:
            self.stream.write(self._sep + ",\n".join(lines))
            self._sep = ",\n"
            self.count += len(lines)
            lines.clear()

    @_writes
    def directory(self, name: str) -> None:
        self.stream.write(f'{self._sep}{{"name": {quote(name)}, "type": "dir", "size": 0}}')
        self._sep = ",\n"
        self.count += 1

    @_writes
    def symlink(self, name: str, target: str) -> None:
        self.stream.write(f'{self._sep}{{"name": {quote(name)}, "type": "symlink", "size": 0, '
                         f'"target": {quote(target)}}}')
        self._sep = ",\n"
        self.count += 1

    @_writes
    def warning(self, member: str, message: str) -> None:
        if self._warnings is None:
            self._warnings = open(self._warnings_path, "w+", encoding="utf-8")
        self._warnings.write(f'{self._warning_sep}{{"member": {quote(member)}, '
                             f'"message": {quote(message)}}}')
        self._warning_sep = ",\n"

    @_writes
    def close(self, totals: dict) -> int:
        """Finish the JSON document; returns its size in bytes."""
        self.stream.write('\n],\n"warnings": [')
        if self._warnings is not None:
            self._warnings.seek(0)
            shutil.copyfileobj(self._warnings, self.stream)
        tail = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in totals.items())
        self.stream.write("\n],\n" + tail + "\n}\n")
        self.stream.close()
        self._close_warnings()
        return os.stat(self.path).st_size

    def _close_warnings(self) -> None:
        if self._warnings is not None:
            warnings, self._warnings = self._warnings, None
            try:
                warnings.close()
            finally:
                self._warnings_path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Close and remove the scratch files; never raises (on a full disk, closing fails to flush, and
        the files must go all the same)."""
        for close in (self.stream.close, self._close_warnings):
            try:
                close()         # the descriptor is closed even when the flush before it fails
            except OSError:
                pass
        self.path.unlink(missing_ok=True)


def save_compressed(manifest: Path, copy: Path) -> None:
    """A zstd-compressed copy of a finished manifest at `copy`, complete or absent (written aside, renamed)."""
    import zstandard
    partial = copy.with_name(copy.name + ".partial")
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "rb") as source, open(partial, "wb") as out:
            zstandard.ZstdCompressor(level=3).copy_stream(source, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, copy)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WriteError.of(exc, copy) from exc
