"""The streaming archive writer: sources' members -> POSIX tar -> zstd -> one file, with a streamed manifest.

Memory stays flat: no per-member state is kept; MANIFEST.json grows in a scratch file next to the archive and
is appended as the last member by finish().
"""
from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import BinaryIO, Callable

from .. import __version__
from ..cancel import CancelToken
from ..util.clock import utc_now
from ..util.names import MANIFEST_NAME
from . import tarheader as th
from .delta import BlockHashes, feeding
from .diff_members import DifferentialMembers
from .differ import Differ, stat_fields
from .errors import SourceError, WriteError
from .inputs import PLAIN_NAME, readinto_from_read, shown_path
from .manifest import ManifestWriter, save_compressed
from .sink import SourceSink
from .stream import BUFFER, CompressedStream

SMALL_FILE = 128 << 10         # read in one call and hashed as one piece; larger go through pooled buffers
WARNINGS_KEPT = 1000            # ArchiveStats keeps the first ones; the manifest has them all
_IFMT, _IFREG = 0o170000, stat.S_IFREG
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# errno on open -> why the file is skipped with a warning instead of failing the run
_SKIP_ON_OPEN = {
    errno.ENOENT: "vanished before it was read; not archived",
    errno.ELOOP: "was replaced by a symbolic link before it was read; not archived",
    errno.ENXIO: "is no longer a regular file; not archived",
}


@dataclass(frozen=True)
class ArchiveStats:
    size: int                   # bytes of the .tar.zst (of the .tar.zst.age when encrypted)
    sha256: str                 # hex digest of the stored file
    members: int
    bytes_in: int               # payload bytes read from the sources
    warnings: list = field(default_factory=list)   # [{"member", "message"}], at most WARNINGS_KEPT
    warning_count: int = 0      # all warnings (the manifest lists every one)


class ArchiveWriter(DifferentialMembers):
    """Writes one .tar.zst at `path` (inside age v1 with an `encryptor`); use as a context manager, call finish()."""

    def __init__(self, path: Path, *, level: int = 3, header: dict, cancel: CancelToken | None = None,
                 on_warning: Callable[[str, str], None] | None = None, encryptor=None,
                 differ: Differ | None = None, blocks_for: Callable[[str], bool] | None = None) -> None:
        self.path = Path(path)
        self.blocks_for = blocks_for    # a full's delta files: their blocks' hashes go into the manifest
        self.differ = differ        # a differential: stores what changed since the full it compares with
        self.level, self.encryptor = level, encryptor
        self.header = {**header, "backupd_version": header.get("backupd_version", __version__)}
        self.cancel = cancel
        self.on_warning = on_warning
        self.bytes_in = 0
        self.members = 0
        self.warnings: list[dict] = []
        self._warning_count = 0
        self._headers = th.HeaderBuilder()
        self._templates: dict[tuple, tuple] = {}     # (mode, uid, gid) -> write_files' header template
        self._uid, self._gid = os.geteuid(), os.getegid()
        self._file = self._stream = self._manifest = None
        self._own_inodes: set[int] = set()
        self._finished = False

    @property
    def bytes_out(self) -> int:
        """Compressed bytes written so far (readable from another thread)."""
        return self._stream.bytes_out if self._stream is not None else 0

    def __enter__(self) -> "ArchiveWriter":
        try:
            self._file = open(self.path, "wb", buffering=0)
            self._stream = CompressedStream(self._file, self.level, encryptor=self.encryptor)
            self._manifest = ManifestWriter(self.path.with_name(self.path.name + ".manifest"), self.header)
            self._own_inodes = {os.fstat(f.fileno()).st_ino for f in (self._file, self._manifest.stream)}
        except BaseException as exc:
            self._abort()
            if isinstance(exc, OSError):
                raise WriteError.of(exc, self.path) from exc
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, WriteError) and exc.written is None:
            exc.written = self._bytes_on_disk()
        if exc_type is not None or not self._finished:
            self._abort()
        return False

    def _bytes_on_disk(self) -> int:
        """What the partial archive and its manifest hold (the space they needed, at least)."""
        total = self.bytes_out
        if self._manifest is not None:
            try:
                total += os.fstat(self._manifest.stream.fileno()).st_size
            except (OSError, ValueError):
                pass
        return total

    def source(self, name: str) -> SourceSink:
        if self._stream is None:
            raise RuntimeError("ArchiveWriter.source() called outside its 'with' block")
        return SourceSink(self, name)

    def check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.check()

    def warn(self, member: str, message: str) -> None:
        """Record a non-fatal problem in the manifest, the stats and the on_warning callback."""
        self._manifest.warning(member, message)
        self._warning_count += 1
        if len(self.warnings) < WARNINGS_KEPT:
            self.warnings.append({"member": member, "message": message})
        if self.on_warning is not None:
            self.on_warning(member, message)

    # -- members ---------------------------------------------------------------------------------
    def write_directory(self, name: str, st: os.stat_result, listing: list | None = None,
                        dir_fd: int | None = None) -> dict:
        """A directory header. In a differential, a dumpdir of `listing` ([(entry name, lstat)], entries
        relative to `dir_fd`): returns {entry name: the full's record} of the files it keeps from the full,
        which the source then leaves out (they are in the manifest already)."""
        if self.differ is None or listing is None:
            self._stream.write(self._headers.header(name + "/", th.DIRECTORY, st.st_mode, st.st_uid,
                                                    st.st_gid, 0, st.st_mtime))
            self._manifest.directory(name)
            self.members += 1
            return {}
        return self._differential_directory(name, st, listing, dir_fd)

    def write_symlink(self, name: str, target: str, st: os.stat_result) -> None:
        self._stream.write(self._headers.header(name, th.SYMLINK, st.st_mode, st.st_uid, st.st_gid, 0,
                                                st.st_mtime, target))
        self._manifest.symlink(name, target)
        self.members += 1

    def write_file(self, name: str, path: str, st: os.stat_result | None,
                   dir_fd: int | None = None) -> None:
        """Archive the regular file at `path` (relative to `dir_fd` if given). The header's size is the
        one in `st` (None: fstat the opened file); changes while reading are warnings."""
        try:
            fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            return self._open_failed(name, shown_path(path, dir_fd), exc)
        try:
            self._from_fd(name, path, dir_fd, fd, st or os.fstat(fd))
        finally:
            os.close(fd)

    def _from_fd(self, name: str, path: str, dir_fd: int | None, fd: int, st: os.stat_result) -> None:
        """Any regular file, from its open descriptor."""
        if st.st_ino in self._own_inodes and self._is_own_file(st):
            return
        shown = shown_path(path, dir_fd)
        if not stat.S_ISREG(st.st_mode):
            return self.warn(name, f"{shown} is no longer a regular file; not archived")
        size = st.st_size
        try:
            if size > SMALL_FILE:
                return self._large_file(name, shown, fd, st)
            data = os.read(fd, size + 1)
            if len(data) != size:
                data = self._fit(name, shown, data, size, fd)
        except BlockingIOError:
            return self.warn(name, f"{shown} is no longer a regular file; not archived")
        except WriteError:
            raise                   # the archive's side failed, not the source's
        except OSError as exc:
            raise SourceError(f"cannot read {shown}: {exc.strerror}") from None
        self._stream.write(self._headers.header(name, th.REGULAR, st.st_mode, st.st_uid, st.st_gid, size,
                                                st.st_mtime, data=data))
        self._manifest.file(name, size, sha256(data).hexdigest(), stat_fields(st))
        self.members += 1
        self.bytes_in += size

    def write_files(self, prefix: str, entries: list, dir_fd: int | None = None) -> None:
        """Many regular files at once, [(member, entry, st or None)] (`entry` relative to `dir_fd`): the hot loop of a directory tree,
        inlined, with the ustar header joined from a per-owner template. Anything unusual (large,
        changed, a name that needs escaping, an owner or mtime that needs pax) takes _from_fd()."""
        self.check_cancel()
        write, fstat, read, close, open_ = self._stream.write, os.fstat, os.read, os.close, os.open
        templates, size_field, plain = self._templates, self._headers.size_field, PLAIN_NAME.fullmatch
        own, lines, members, payload = self._own_inodes, [], 0, 0
        last_mtime, mtime_field, mtime_sum = -1, b"", 0
        for member, entry, st in entries:
            full = prefix + member
            try:
                fd = open_(entry, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                self._manifest.files(lines)
                self._open_failed(full, shown_path(entry, dir_fd), exc)
                continue
            try:
                st = st or fstat(fd)
                size, mtime = st.st_size, int(st.st_mtime)
                owner = (st.st_mode, st.st_uid, st.st_gid)
                template = templates.get(owner) or self._template(owner)
                if mtime != last_mtime and 0 <= mtime <= th.MAX_OCTAL_11:
                    last_mtime, mtime_field = mtime, b"%011o\x00" % mtime
                    mtime_sum = sum(mtime_field)
                if (size > SMALL_FILE or st.st_mode & _IFMT != _IFREG or st.st_ino in own
                        or not template[0] or mtime != last_mtime or plain(full) is None):
                    self._manifest.files(lines)
                    self._from_fd(full, entry, dir_fd, fd, st)
                    continue
                data = read(fd, size + 1)
                if len(data) != size:
                    data = self._fit(full, shown_path(entry, dir_fd), data, size, fd)
            except BlockingIOError:
                self.warn(full, f"{shown_path(entry, dir_fd)} is no longer a regular file; not archived")
                continue
            except WriteError:
                raise
            except OSError as exc:
                raise SourceError(f"cannot read {shown_path(entry, dir_fd)}: {exc.strerror}") from None
            finally:
                close(fd)
            name_b = full.encode()
            middle, tail, fixed_sum = template
            sizes, size_sum = size_field(size)
            write(b"".join((name_b.ljust(100, b"\x00"), middle, sizes, mtime_field,
                            b"%06o\x00 " % (fixed_sum + sum(name_b) + size_sum + mtime_sum), tail,
                            data, th.ZEROS[:-size % th.BLOCK])))
            lines.append(f'{{"name": "{full}", "type": "file", "size": {size}, '
                         f'"sha256": "{sha256(data).hexdigest()}", "stat": [{st.st_mode & 0o7777}, '
                         f'{st.st_uid}, {st.st_gid}, {st.st_mtime_ns}, {st.st_ctime_ns}]}}')
            members += 1
            payload += size
        self._manifest.files(lines)
        self.members += members
        self.bytes_in += payload

    def _template(self, owner: tuple[int, int, int]) -> tuple:
        """The cached ustar template of a regular file's (mode, uid, gid); (None,) if it needs pax."""
        template = self._headers.regular_template(*owner) or (None,)
        self._templates[owner] = template
        return template

    def _is_own_file(self, st: os.stat_result) -> bool:
        """The archive or manifest being written, when a source's tree contains the spool directory."""
        return any(os.path.samestat(st, os.fstat(f.fileno())) for f in (self._file, self._manifest.stream))

    def _open_failed(self, name: str, path: str, exc: OSError) -> None:
        """A file that vanished or changed type is a warning; anything else fails the run."""
        if exc.errno not in _SKIP_ON_OPEN:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
        self.warn(name, f"{path} {_SKIP_ON_OPEN[exc.errno]}")

    def _fit(self, name: str, path: str, data: bytes, size: int, fd: int) -> bytes:
        """Make a short or long read exactly `size` bytes, with a warning."""
        while len(data) < size:
            more = os.read(fd, size + 1 - len(data))
            if not more:
                self.warn(name, f"{path} shrank while being read; padded with zeros to {size} bytes")
                return data + bytes(size - len(data))
            data += more
        if len(data) > size:
            self.warn(name, f"{path} grew while being read; truncated to {size} bytes")
        return data[:size]

    def _large_file(self, name: str, path: str, fd: int, st: os.stat_result) -> None:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return self.warn(name, f"{path} is no longer a regular file; not archived")
        self._stream.write(self._headers.header(name, th.REGULAR, st.st_mode, st.st_uid, st.st_gid,
                                                st.st_size, st.st_mtime))
        warnings = self._warning_count
        blocks = BlockHashes() if self.blocks_for is not None and self.blocks_for(name) else None
        with open(fd, "rb", buffering=0, closefd=False) as reader:
            digest = self._copy(name, path, feeding(reader.readinto, blocks), st.st_size)
            if reader.read(1):
                self.warn(name, f"{path} grew while being read; truncated to {st.st_size} bytes")
        if warnings == self._warning_count and os.fstat(fd).st_mtime_ns != st.st_mtime_ns:
            self.warn(name, f"{path} changed while being read; the archived copy may be inconsistent")
        self._manifest.file(name, st.st_size, digest, stat_fields(st), blocks=blocks.hex() if blocks else "")
        self.members += 1

    def write_stream(self, name: str, stream: BinaryIO, size: int, mode: int = 0o600,
                     mtime: float | None = None) -> None:
        """Copy exactly `size` bytes from `stream` as a regular file owned by the daemon's user."""
        mtime = time.time() if mtime is None else mtime
        self._stream.write(self._headers.header(name, th.REGULAR, mode, self._uid, self._gid, size, mtime))
        readinto = getattr(stream, "readinto", None) or readinto_from_read(stream)
        digest = self._copy(name, name, readinto, size)
        self._manifest.file(name, size, digest)
        self.members += 1

    def _copy(self, name: str, origin: str, readinto, size: int) -> str:
        """Stream `size` bytes through the hash and the compressor, zero-padding a short source."""
        stream, digest = self._stream, sha256()
        remaining = size
        while remaining:
            self.check_cancel()
            buffer = stream.take_buffer()
            view = memoryview(buffer)
            count = readinto(view[:min(BUFFER, remaining)])
            if not count:
                stream.give_back(buffer)
                self.warn(name, f"{origin} shrank while being read; padded with zeros to {size} bytes")
                self._zero_fill(digest, remaining)
                break
            digest.update(view[:count])
            view.release()
            stream.submit(buffer, count)
            remaining -= count
            self.bytes_in += count
        stream.write(th.padding(size))
        return digest.hexdigest()

    def _zero_fill(self, digest, count: int) -> None:
        while count:
            zeros = bytes(min(BUFFER, count))
            digest.update(zeros)
            self._stream.write(zeros)
            count -= len(zeros)

    # -- end ---------------------------------------------------------------------------------------
    def finish(self, keep_manifest: Path | None = None) -> ArchiveStats:
        """Append MANIFEST.json, end the tar and zstd streams, fsync and close the file; with
        `keep_manifest`, a compressed copy of the manifest goes there (a full's: what differentials compare with)."""
        if self._finished or self._stream is None:
            raise RuntimeError("ArchiveWriter.finish() called twice or outside its 'with' block")
        self.check_cancel()
        payload = self.bytes_in
        totals = {"finished": utc_now().isoformat(timespec="seconds"),
                  "member_count": self._manifest.count, "bytes_in": self.bytes_in,
                  "warning_count": self._warning_count}
        size = self._manifest.close(totals)
        self._stream.write(self._headers.header(MANIFEST_NAME, th.REGULAR, 0o644, self._uid, self._gid,
                                                size, time.time()))
        with open(self._manifest.path, "rb") as manifest:
            self._copy(MANIFEST_NAME, MANIFEST_NAME, manifest.readinto, size)
        self._stream.write(th.END_OF_ARCHIVE)
        sha256 = self._stream.close()
        self._file.close()
        if keep_manifest is not None:
            save_compressed(self._manifest.path, keep_manifest)
        self._manifest.discard()
        self._finished = True
        return ArchiveStats(size=os.stat(self.path).st_size, sha256=sha256, members=self.members,
                            bytes_in=payload, warnings=list(self.warnings),
                            warning_count=self._warning_count)

    def _abort(self) -> None:
        """Close everything and remove the partial archive and scratch files; never raises, so a full disk
        cannot keep a descriptor of a removed file (and so its space) open."""
        if self._stream is not None:
            self._stream.abort()
        if self._manifest is not None:
            self._manifest.discard()
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        self.path.unlink(missing_ok=True)
