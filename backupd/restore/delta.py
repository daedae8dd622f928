"""A differential's delta files applied in the staging folder: the delta member (what the file grew by since the
full) appended to the full's copy, the whole hashed as it is read and written (the standard-tool step is
`cat DELTA >> FILE`). Every file is opened by descriptor relative to its folder, never through a symlink."""
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
    folder = _open_folder(restore.chain.root_fd, parts[:-1], delta.name)
    try:
        member = parts_of(delta.member)
        delta_folder = _open_folder(restore.chain.root_fd, member[:-1], delta.member)
        try:
            delta_fd = open_regular(delta_folder, member[-1], delta.member)
        finally:
            os.close(delta_folder)
        try:
            attributes = _attributes(restore, delta, os.fstat(delta_fd))
            return patch(folder, parts[-1], delta_fd, delta.name, lambda fd: apply_attributes(fd, *attributes))
        finally:
            os.close(delta_fd)
    finally:
        os.close(folder)


def _attributes(restore, delta, member: os.stat_result) -> tuple:
    """(mode, uid, gid, mtime_ns) of the patched file: the manifest's stat, else the delta member's."""
    mode, uid, gid, mtime_ns = delta.stat or (member.st_mode, member.st_uid, member.st_gid, member.st_mtime_ns)
    message = special_bits_message(mode & 0o7777)
    if message:
        restore.summary.warnings.append(f"{delta.name}: {message}")
    owner = (uid, gid) if restore.keep_owners and delta.stat else (None, None)
    return mode & 0o777, *owner, mtime_ns


def _open_folder(root_fd: int, parts: list[str], shown: str) -> int:
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


def patch(base_dir: int, base_name: str, delta_fd: int, shown: str, finish=lambda fd: None) -> Patched:
    """Make file `base_name` of folder `base_dir` itself followed by the bytes read from `delta_fd`, hashed
    as they are read and written; `finish(fd)` then sets its attributes. The delta is appended in place (the
    full's copy is not written again); a file with other hard links is copied first, so they keep the
    full's bytes. The folder's mtime is kept."""
    fd = open_regular(base_dir, base_name, f"{shown}, the base of its delta,", os.O_RDWR)
    try:
        if os.fstat(fd).st_nlink != 1:
            return _copied(base_dir, base_name, fd, delta_fd, finish)
        digest, size = hashlib.sha256(), 0
        while block := os.read(fd, READ):           # to its end: the delta goes after it
            digest.update(block)
            size += len(block)
        size += _append(delta_fd, fd, digest)
        finish(fd)
    finally:
        os.close(fd)
    return Patched(size, digest.hexdigest())


def _append(source: int, out_fd: int, digest) -> int:
    """Copy what is left of `source` to `out_fd`, hashed; the bytes copied."""
    size = 0
    while block := os.read(source, READ):
        digest.update(block)
        size += len(block)
        view = memoryview(block)
        while view:
            view = view[os.write(out_fd, view):]
    return size


def _copied(base_dir: int, base_name: str, base_fd: int, delta_fd: int, finish) -> Patched:
    """The full's copy and the delta written to a new file that then takes the copy's name."""
    folder = os.fstat(base_dir)
    temp = TEMP_PREFIX + secrets.token_hex(6)
    out_fd = os.open(temp, _CREATE, 0o600, dir_fd=base_dir)
    digest = hashlib.sha256()
    try:
        size = _append(base_fd, out_fd, digest) + _append(delta_fd, out_fd, digest)
        finish(out_fd)
        os.rename(temp, base_name, src_dir_fd=base_dir, dst_dir_fd=base_dir)
    except BaseException:
        os.unlink(temp, dir_fd=base_dir)
        raise
    finally:
        os.close(out_fd)
    os.utime(base_dir, ns=(folder.st_atime_ns, folder.st_mtime_ns))
    return Patched(size, digest.hexdigest())
