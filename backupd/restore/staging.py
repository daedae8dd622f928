"""The restore folder: opened once, a fresh staging folder inside it, descriptors for every folder below.

Members are extracted into the staging folder; only once the whole archive verified is the staged tree
moved into place (renames on the same file system), else the staging folder is removed and the restore
folder left as it was. No path is ever resolved through a symlink: each component is opened relative to
its parent's descriptor with O_NOFOLLOW."""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from pathlib import Path

from .rules import Refused

STAGING_PREFIX = ".backupd-restore-"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OWNER_RWX = 0o700


class RestoreError(Exception):
    """The restore failed and wrote nothing into the restore folder; the message is one line."""


def open_dir(parent_fd: int, name: str, shown: str, create: bool = True) -> int:
    """The descriptor of folder `name` in `parent_fd` (made if missing and `create`); never a symlink."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        os.mkdir(name, 0o777, dir_fd=parent_fd)       # a folder the archive did not list: umask applies
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        if stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
            raise Refused(f"{shown} is a symlink: nothing is written through it") from None
        raise Refused(f"{shown} is not a folder") from None


def apply_attributes(fd: int, mode: int, uid: int | None, gid: int | None, mtime_ns: int) -> None:
    """Owner (when given), permission bits and mtime of an open file or folder, in that order."""
    if uid is not None:
        os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)
    os.utime(fd, ns=(mtime_ns, mtime_ns))


class Target:
    """The restore folder and its staging folder."""

    def __init__(self, path: os.PathLike | str, force: bool) -> None:
        self.path = Path(path)
        self.created = False
        try:
            os.makedirs(self.path)
            self.created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise RestoreError(f"cannot create {self.path}: {exc.strerror}") from None
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise RestoreError(f"cannot open {self.path}: {exc.strerror}") from None
        if not force and self._has_entries():
            os.close(self.fd)
            raise RestoreError(f"{self.path} is not empty (restore into an empty folder, or force it)")
        self.staging = STAGING_PREFIX + secrets.token_hex(6)
        os.mkdir(self.staging, 0o700, dir_fd=self.fd)
        self.staging_fd = os.open(self.staging, DIR_FLAGS, dir_fd=self.fd)

    def _has_entries(self) -> bool:
        with os.scandir(self.fd) as entries:
            return any(True for _ in entries)

    def commit(self, deferred_modes: dict[tuple[str, ...], int], keep_owners: bool) -> list[str]:
        """Move the staged tree into the restore folder (merging into folders that exist there); then the
        folder modes that had to wait (they lack owner rwx). Returns warnings."""
        warnings: list[str] = []
        _move_entries(self.staging_fd, self.fd, "", warnings, keep_owners)
        for parts, mode in sorted(deferred_modes.items(), key=lambda item: -len(item[0])):
            self._chmod(list(parts), mode, warnings)
        self.close(remove_target=False)
        return warnings

    def _chmod(self, parts: list[str], mode: int, warnings: list[str]) -> None:
        fds: list[int] = []
        try:
            for index, name in enumerate(parts):
                fds.append(open_dir(fds[-1] if fds else self.fd, name, "/".join(parts[:index + 1]), False))
            os.fchmod(fds[-1], mode)
        except (OSError, Refused) as exc:
            warnings.append(f"{'/'.join(parts)}: mode {mode:04o} not applied: {exc}")
        finally:
            for fd in fds:
                os.close(fd)

    def close(self, remove_target: bool = True) -> None:
        """Remove the staging folder (what is left in it) and, if this restore made the restore folder
        and `remove_target`, that folder too."""
        os.close(self.staging_fd)
        try:
            shutil.rmtree(self.staging, dir_fd=self.fd)
        except OSError:
            pass
        os.close(self.fd)
        if remove_target and self.created:
            try:
                self.path.rmdir()
            except OSError:
                pass


def _move_entries(src_fd: int, dst_fd: int, prefix: str, warnings: list[str], keep_owners: bool) -> None:
    with os.scandir(src_fd) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        _move(src_fd, dst_fd, name, prefix + name, warnings, keep_owners)


def _move(src_fd: int, dst_fd: int, name: str, shown: str, warnings: list[str], keep_owners: bool) -> None:
    """Rename one staged entry into place; a folder that exists there gets the staged one's contents."""
    try:
        existing = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    staged = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
    if stat.S_ISDIR(existing.st_mode):
        if stat.S_ISDIR(staged.st_mode):
            return _merge(src_fd, dst_fd, name, shown, staged, warnings, keep_owners)
        warnings.append(f"{shown}: a folder of that name is already there; not replaced")
        return
    if stat.S_ISDIR(staged.st_mode):
        os.unlink(name, dir_fd=dst_fd)
    os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def _merge(src_fd: int, dst_fd: int, name: str, shown: str, staged: os.stat_result, warnings: list[str],
           keep_owners: bool) -> None:
    src = os.open(name, DIR_FLAGS, dir_fd=src_fd)
    try:
        dst = os.open(name, DIR_FLAGS, dir_fd=dst_fd)
        try:
            _move_entries(src, dst, shown + "/", warnings, keep_owners)
            owner = (staged.st_uid, staged.st_gid) if keep_owners else (None, None)
            apply_attributes(dst, stat.S_IMODE(staged.st_mode), *owner, staged.st_mtime_ns)
        finally:
            os.close(dst)
    finally:
        os.close(src)


class DirChain:
    """Open descriptors from the staging root down to the folder of the last member. Entering another
    folder leaves the ones not on its path; a folder's own attributes (from its member) are applied as
    it is left, after its contents."""

    def __init__(self, root_fd: int, keep_owners: bool, remember: bool = False) -> None:
        self.root_fd = root_fd
        self.keep_owners = keep_owners
        self.deferred: dict[tuple[str, ...], int] = {}      # folder -> mode applied after the commit
        # with `remember`, each folder's attributes are applied again whenever it is left (an incremental
        # archive may list its folders first and their files later, as GNU tar does)
        self.applied: dict[tuple[str, ...], tuple] | None = {} if remember else None
        self._names: list[str] = []
        self._fds: list[int] = []
        self._attributes: list[tuple | None] = []

    def enter(self, parts: list[str]) -> int:
        """The descriptor of the folder `parts` below the root, made where missing."""
        names = self._names
        if names == parts:
            return self._fds[-1] if parts else self.root_fd
        common, limit = 0, min(len(names), len(parts))
        while common < limit and names[common] == parts[common]:
            common += 1
        self.leave(common)
        fd = self._fds[-1] if self._fds else self.root_fd
        for index in range(common, len(parts)):
            fd = open_dir(fd, parts[index], "/".join(parts[:index + 1]))
            names.append(parts[index])
            self._fds.append(fd)
            self._attributes.append(None if self.applied is None else self.applied.get(tuple(names)))
        return fd

    def set_attributes(self, mode: int, uid: int, gid: int, mtime_ns: int) -> None:
        """Attributes for the folder last entered, applied when it is left."""
        self._attributes[-1] = (mode, uid, gid, mtime_ns)
        if self.applied is not None:
            self.applied[tuple(self._names)] = self._attributes[-1]

    def leave(self, depth: int = 0) -> None:
        """Close the folders below `depth` levels, applying their attributes."""
        while len(self._fds) > depth:
            attributes = self._attributes.pop()
            fd = self._fds.pop()
            try:
                if attributes is not None:
                    self._apply(fd, *attributes)
            finally:
                os.close(fd)
                self._names.pop()

    def forget(self, parts: list[str]) -> None:
        """A folder removed from the staging tree: no mode is to be applied to it or below it."""
        size, prefix = len(parts), tuple(parts)
        for table in (self.deferred, self.applied or {}):
            for key in [key for key in table if key[:size] == prefix]:
                del table[key]

    def _apply(self, fd: int, mode: int, uid: int, gid: int, mtime_ns: int) -> None:
        self.deferred.pop(tuple(self._names), None)     # a later archive's attributes replace an earlier's
        if mode & OWNER_RWX != OWNER_RWX:
            self.deferred[tuple(self._names)] = mode
            mode |= OWNER_RWX       # until the commit: the staged tree must stay movable and removable
        owner = (uid, gid) if self.keep_owners else (None, None)
        apply_attributes(fd, mode, *owner, mtime_ns)
