"""A directory on this machine (another disk, an NFS mount). Stores by hard link or copy, always atomically.

An interrupted store (a kill while copying) leaves `.partial-<name>` files and a sidecar without its archive;
the next store, or clean_debris() at the daemon's start, removes them. Stores hold a shared lock on
`.backupd.lock` and cleaning an exclusive one, so a store in progress is never taken for debris."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Iterator

from ..config import LocalDestinationConfig
from ..util.files import fsync_directory, write_atomic
from ..util.names import ARCHIVE_SUFFIXES
from .base import ArchiveMeta, DestinationError, ErrorKind, ProgressCallback, StoredBackup

log = logging.getLogger("backupd.destinations.local")
SUFFIX = ARCHIVE_SUFFIXES              # .tar.zst, and .tar.zst.age when encrypted (str.endswith takes either)
SIDECAR = ".meta.json"
SIDECARS = tuple(suffix + SIDECAR for suffix in SUFFIX)
PARTIAL_PREFIX = ".partial-"
LOCK_NAME = ".backupd.lock"
COPY_BLOCK = 4 * 1024 * 1024
SIDECAR_KEYS = {"name", "job", "run_id", "sha256"}     # a sidecar backupd wrote has these


class LocalDestination:
    verb = "storing on"
    remote = False

    def __init__(self, config: LocalDestinationConfig, *, state_dir: Path | None = None, cancel=None):
        self.name = config.name
        self.root = Path(config.path)
        self.cancel = cancel

    def store(self, archive: Path, meta: ArchiveMeta, progress: ProgressCallback | None = None) -> StoredBackup:
        final = self.root / meta.name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with self._storing():
                existing = self._existing(final, meta)
                if existing:
                    return existing
                self._put_in_place(archive, final, meta, progress)
        except OSError as exc:
            raise DestinationError(f"local destination '{self.name}': cannot write {final}: "
                                   f"{exc.strerror}", kind=_kind(exc), permanent=True) from None
        return self._stored(final, meta.__dict__)

    def _put_in_place(self, archive: Path, final: Path, meta: ArchiveMeta,
                      progress: ProgressCallback | None) -> None:
        """Sidecar first (an archive is never there without it), then the archive; a failure (a full disk, a
        cancel, a bad copy) removes the partial copy and the sidecar the archive did not get to."""
        partial = self.root / f"{PARTIAL_PREFIX}{meta.name}"
        try:
            self._write_sidecar(meta)
            self._place(archive, partial, meta, progress)
            os.replace(partial, final)
            fsync_directory(self.root)
        except BaseException:
            self._forget(partial, final)
            raise

    def _forget(self, partial: Path, final: Path) -> None:
        """Remove a failed store's partial copy, and its sidecar unless the archive is in place; never raises."""
        doomed = [partial] if final.exists() else [partial, final.with_name(final.name + SIDECAR)]
        for path in doomed:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _storing(self):
        """Hold the shared store lock; first clean the debris if no other store is in progress."""
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if _try_lock(fd, fcntl.LOCK_EX):
                self._remove_debris()
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def clean_debris(self) -> list[str]:
        """Remove what interrupted stores left: backupd's partial files and sidecars whose archive is missing,
        nothing else; returns their names. Skipped (nothing removed) while a store is in progress."""
        try:
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return []           # never stored to: nothing to clean
        except OSError as exc:
            log.warning("cannot clean %s: %s", self.root, exc.strerror, extra={"destination": self.name})
            return []
        try:
            return self._remove_debris() if _try_lock(fd, fcntl.LOCK_EX) else []
        finally:
            os.close(fd)

    def _remove_debris(self) -> list[str]:
        removed = []
        for path in self.root.iterdir():
            if self._is_debris(path):
                try:
                    path.unlink()
                except OSError as exc:
                    log.warning("cannot remove %s: %s", path, exc.strerror, extra={"destination": self.name})
                    continue
                removed.append(path.name)
        if removed:
            fsync_directory(self.root)
            log.info("removed what interrupted stores left", extra={"destination": self.name, "files": removed})
        return removed

    def _is_debris(self, path: Path) -> bool:
        """A partial copy or sidecar of backupd's, or one of its sidecars whose archive is missing."""
        name = path.name
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                return False
        except OSError:
            return False
        if name.startswith(PARTIAL_PREFIX):
            return name.endswith(SUFFIX) or any(sidecar in name for sidecar in SIDECARS)
        if not name.endswith(SIDECARS) or (self.root / name.removesuffix(SIDECAR)).exists():
            return False
        return SIDECAR_KEYS <= self._sidecar(path.parent / name.removesuffix(SIDECAR)).keys()

    def _existing(self, final: Path, meta: ArchiveMeta) -> StoredBackup | None:
        info = self._sidecar(final)
        if final.exists() and info.get("sha256") == meta.sha256 and final.stat().st_size == meta.size:
            return self._stored(final, info)
        return None

    def _place(self, archive: Path, partial: Path, meta: ArchiveMeta, progress: ProgressCallback | None) -> None:
        partial.unlink(missing_ok=True)
        try:
            os.link(archive, partial)   # same file system: no copy, the same verified bytes
        except OSError:
            self._copy(archive, partial, meta, progress)
        if progress:
            progress(meta.size, meta.size)

    def _copy(self, archive: Path, partial: Path, meta: ArchiveMeta, progress: ProgressCallback | None) -> None:
        digest = hashlib.sha256()
        done = 0
        try:
            with open(archive, "rb") as src, open(partial, "wb") as dst:
                while block := src.read(COPY_BLOCK):
                    if self.cancel:
                        self.cancel.check()
                    dst.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, meta.size)
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != meta.sha256:
            partial.unlink(missing_ok=True)
            raise DestinationError(f"local destination '{self.name}': copy of {meta.name} does not "
                                   "match its sha256; the disk may be failing", kind=ErrorKind.VERIFY)

    def _write_sidecar(self, meta: ArchiveMeta) -> None:
        write_atomic(self.root / (meta.name + SIDECAR), json.dumps(meta.__dict__, sort_keys=True).encode(),
                     mode=0o666, tmp_prefix=PARTIAL_PREFIX)

    def _sidecar(self, archive: Path) -> dict:
        try:
            info = json.loads((archive.parent / (archive.name + SIDECAR)).read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def _stored(self, path: Path, info: dict) -> StoredBackup:
        return StoredBackup(name=path.name, size=path.stat().st_size, location=str(path),
                            job=info.get("job", ""), run_id=info.get("run_id", ""),
                            sha256=info.get("sha256", ""), created=info.get("created", ""),
                            extra={"host": info.get("host", "")})

    def list(self, job: str | None = None) -> list[StoredBackup]:
        try:
            entries = [p for p in self.root.iterdir()
                       if p.name.endswith(SUFFIX) and not p.name.startswith(PARTIAL_PREFIX)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DestinationError(f"local destination '{self.name}': cannot list {self.root}: "
                                   f"{exc.strerror}", kind=_kind(exc)) from None
        backups = [self._stored(path, self._sidecar(path)) for path in entries]
        backups = [b for b in backups if b.job and (job is None or b.job == job)]
        return sorted(backups, key=lambda b: (b.created, b.name), reverse=True)

    def fetch_stream(self, name: str) -> Iterator[bytes]:
        source = self._path_of(name)
        try:
            src = open(source, "rb")
        except FileNotFoundError:
            raise DestinationError(f"local destination '{self.name}': no backup named {name}",
                                   kind=ErrorKind.NOT_FOUND) from None
        except OSError as exc:
            raise DestinationError(f"local destination '{self.name}': cannot read {source}: {exc.strerror}",
                                   kind=_kind(exc)) from None
        return _blocks(src, source, self.name)

    def fetch(self, name: str, out_path: Path) -> None:
        with open(out_path, "wb") as dst:
            for block in self.fetch_stream(name):
                dst.write(block)

    def delete(self, name: str) -> None:
        path = self._path_of(name)
        path.unlink(missing_ok=True)
        (self.root / (name + SIDECAR)).unlink(missing_ok=True)
        if self.root.exists():
            fsync_directory(self.root)

    def _path_of(self, name: str) -> Path:
        if "/" in name or not name.endswith(SUFFIX) or name.startswith("."):
            raise DestinationError(f"local destination '{self.name}': {name!r} is not a backup name",
                                   kind=ErrorKind.NOT_FOUND)
        return self.root / name

    def close(self) -> None:
        pass


_KIND_OF_ERRNO = {errno.ENOSPC: ErrorKind.QUOTA, errno.EDQUOT: ErrorKind.QUOTA, errno.EACCES: ErrorKind.AUTH,
                  errno.EPERM: ErrorKind.AUTH, errno.ENOENT: ErrorKind.NOT_FOUND}


def _blocks(src, path: Path, name: str) -> Iterator[bytes]:
    """The file's bytes in COPY_BLOCK pieces; closed at the end, or when the reader stops early."""
    with src:
        while True:
            try:
                block = src.read(COPY_BLOCK)
            except OSError as exc:
                raise DestinationError(f"local destination '{name}': cannot read {path}: {exc.strerror}",
                                       kind=_kind(exc)) from None
            if not block:
                return
            yield block


def _try_lock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _kind(exc: OSError) -> ErrorKind:
    return _KIND_OF_ERRNO.get(exc.errno, ErrorKind.IO)
