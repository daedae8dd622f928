"""A differential's delta files made in the staging folder: each extent member written over the full's copy at
its offset (the standard-tool step is `dd ... seek=OFFSET oflag=seek_bytes conv=notrunc`), then the file hashed
whole and compared with the manifest. Every file is opened by descriptor relative to its folder, never
through a symlink."""
from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass

from .ledger import key
from .rules import Refused, parts_of, special_bits_message
from .staging import apply_attributes, open_dir

READ = 1 << 20
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_PREFIX = ".backupd-patched-"


@dataclass
class Patched:
    size: int
    sha256: str


def open_regular(dir_fd: int, name: str, shown: str, access: int = os.O_RDONLY) -> int:
    """A descriptor (read-only, or `access`) on a regular file of an open folder; Refused if it is anything
    else."""
    try:
        fd = os.open(name, _OPEN | access, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Refused(f"{shown} is not there") from None
    except OSError as exc:
        raise Refused(f"{shown} cannot be opened: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(f"{shown} is not a regular file")
    return fd


def apply_deltas(restore, deltas: list) -> list[str]:
    """Apply a differential's deltas (differential.Delta) in `restore`'s staging folder (a StagedRestore);
    the problems, one line each (a delta that does not apply, a result that is not the manifest's)."""
    problems = []
    for delta in deltas:
        try:
            parts = parts_of(delta.name)
            if not restore.selection(parts) or key(delta.name) in restore.refused:
                continue
            made = _apply(restore, delta, parts)
        except Refused as reason:
            problems.append(f"{delta.name}: {reason}")
            continue
        if (made.size, made.sha256) != (delta.size, delta.sha256):
            problems.append(f"differs: {delta.name}: the patched file is not the one the manifest describes")
        if restore.ledger is not None:
            restore.ledger.replace_file(delta.name, made.size, made.sha256)
    return problems


def _apply(restore, delta, parts: list[str]) -> Patched:
    folder = open_folder(restore.chain.root_fd, parts[:-1], delta.name)
    opened: list[tuple[int, int]] = []          # (descriptor, offset) of each extent member
    try:
        for extent in delta.extents:
            member = parts_of(extent.member)
            extent_folder = open_folder(restore.chain.root_fd, member[:-1], extent.member)
            try:
                opened.append((open_regular(extent_folder, member[-1], extent.member), extent.offset))
            finally:
                os.close(extent_folder)
        attributes = _attributes(restore, delta)
        finish = (lambda fd: apply_attributes(fd, *attributes)) if attributes else (lambda fd: None)
        return patch(folder, parts[-1], opened, delta.name, finish)
    finally:
        for fd, _ in opened:
            os.close(fd)
        os.close(folder)


def _attributes(restore, delta) -> tuple | None:
    """(mode, uid, gid, mtime_ns) of the patched file from the manifest's stat; None: the full's copy's stay."""
    if not delta.stat:
        return None
    mode, uid, gid, mtime_ns = delta.stat
    message = special_bits_message(mode & 0o7777)
    if message:
        restore.summary.warnings.append(f"{delta.name}: {message}")
    owner = (uid, gid) if restore.keep_owners else (None, None)
    return mode & 0o777, *owner, mtime_ns


def open_folder(root_fd: int, parts: list[str], shown: str) -> int:
    """A descriptor of the staged folder `parts` (never through a symlink); Refused if it is not there."""
    fd = os.dup(root_fd)
    try:
        for index, name in enumerate(parts):
            next_fd = open_dir(fd, name, "/".join(parts[:index + 1]), create=False)
            os.close(fd)
            fd = next_fd
    except FileNotFoundError:
        os.close(fd)
        raise Refused(f"the folder of {shown} is not there") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def patch(base_dir: int, base_name: str, extents: list[tuple[int, int]], shown: str,
          finish=lambda fd: None) -> Patched:
    """Write each (descriptor, offset) of `extents` over file `base_name` of folder `base_dir`, then hash it
    whole; `finish(fd)` sets its attributes. A file with other hard links is copied first, so they keep the
    full's bytes. The folder's mtime is kept."""
    folder = os.fstat(base_dir)
    fd = open_regular(base_dir, base_name, f"{shown}, the base of its delta,", os.O_RDWR)
    try:
        if os.fstat(fd).st_nlink != 1:
            fd = _replaced_by_copy(base_dir, base_name, fd)
        for source, offset in extents:
            _write_at(source, fd, offset)
        made = _hashed(fd)
        finish(fd)
    finally:
        os.close(fd)
    os.utime(base_dir, ns=(folder.st_atime_ns, folder.st_mtime_ns))
    return made


def _write_at(source: int, out_fd: int, offset: int) -> None:
    """Copy all of `source` into `out_fd` from `offset` on."""
    while block := os.read(source, READ):
        view = memoryview(block)
        while view:
            written = os.pwrite(out_fd, view, offset)
            view, offset = view[written:], offset + written


def _hashed(fd: int) -> Patched:
    digest, size = hashlib.sha256(), 0
    while block := os.pread(fd, READ, size):
        digest.update(block)
        size += len(block)
    return Patched(size, digest.hexdigest())


def _replaced_by_copy(base_dir: int, base_name: str, base_fd: int) -> int:
    """A copy of the full's copy takes its name (its other links keep the old bytes); the copy's descriptor."""
    temp = TEMP_PREFIX + secrets.token_hex(6)
    out_fd = os.open(temp, (_CREATE & ~os.O_WRONLY) | os.O_RDWR, 0o600, dir_fd=base_dir)
    try:
        _write_at(base_fd, out_fd, 0)
        os.rename(temp, base_name, src_dir_fd=base_dir, dst_dir_fd=base_dir)
    except BaseException:
        os.close(out_fd)
        os.unlink(temp, dir_fd=base_dir)
        raise
    finally:
        os.close(base_fd)
    return out_fd
