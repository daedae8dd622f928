"""Safe extraction of a backupd archive into a folder, by directory descriptors, verified before it counts.

Rules (a refused member is named with its reason, one line each, and skipped; nothing is written outside
the folder): absolute names, '..' or empty components, NUL bytes; symlinks whose target is absolute or leaves
the folder (resolved from the link's folder); hard links except to regular files this restore already
wrote; anything below a symlink or a refused member (impossible by construction: every component is opened
with O_NOFOLLOW); devices, FIFOs and other special members. Setuid, setgid and sticky bits are never
restored: the file or folder is extracted without them and a warning names it. Modes and mtimes are kept
(a folder's after its contents), owners only when keep_owners (default: running as root), from the
archive's numeric ids. MANIFEST.json is checked, not extracted. A dumpdir member (GNU incremental, as a
differential holds) makes its folder and removes from it what it does not list (see dumpdir.py).

Everything goes into a staging folder inside the target first; only when the archive's sha256 (if given)
and every member against MANIFEST.json verified is the staged tree moved into place (session.py)."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Callable

from ..util.names import DELTA_DIR, DELTA_SUFFIX
from . import dumpdir
from .reader import ArchiveReader, Member
from .rules import REFUSED_TYPES, Refused, Selection, parts_of, special_bits_message, symlink_problem
from .staging import DirChain, RestoreError, apply_attributes, open_dir

__all__ = ["Extractor", "RestoreError", "RestoreSummary"]

FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class RestoreSummary:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0                  # file data written
    skipped: int = 0                # members outside the --source / --path selection
    seconds: float = 0.0
    archive_sha256: str = ""
    refused: list[str] = field(default_factory=list)    # "NAME: why", one per refused member
    warnings: list[str] = field(default_factory=list)   # "NAME: what", e.g. a setuid bit not restored


def shown(name: str) -> str:
    """A member name fit for a one-line message."""
    return name if name.isprintable() else repr(name)


class Extractor:
    """Writes the members of one archive after another into the staging folder `chain` starts from.
    `removed(path, was_a_folder)` is told of every staged path a dumpdir removed."""

    def __init__(self, reader: ArchiveReader, chain: DirChain, selection: Selection, summary: RestoreSummary,
                 removed: Callable[[str, bool], None] = lambda path, is_dir: None) -> None:
        self.reader = reader
        self.chain = chain
        self.root_fd = chain.root_fd
        self.selection = selection
        self.keep_owners = chain.keep_owners
        self.summary = summary
        self.removed = removed
        self.refused_names: set[tuple[str, ...]] = set()
        self.handlers = {"file": self.file, "dir": self.directory, "symlink": self.symlink,
                         "hardlink": self.hardlink, "dumpdir": self.dumpdir}

    def member(self, member: Member) -> bool:
        """Extract one member; whether it was written (not skipped or refused)."""
        try:
            parts = parts_of(member.name)
            if not parts:
                return False                # './': the restore folder itself
            if not self.selection.everything and not self.selection(_selected_as(parts)):
                self.summary.skipped += 1
                return False
            self._check_parents(parts)
            handler = self.handlers.get(member.type)
            if handler is None:
                raise Refused(REFUSED_TYPES.get(member.type, f"unsupported member type {member.type}"))
            handler(member, parts)
            return True
        except Refused as reason:
            self.summary.refused.append(f"{shown(member.name)}: {reason}")
            if parts_ok := _quiet_parts(member.name):
                self.refused_names.add(tuple(parts_ok))
            return False

    def _check_parents(self, parts: list[str]) -> None:
        if self.refused_names:
            for end in range(1, len(parts)):
                if tuple(parts[:end]) in self.refused_names:
                    raise Refused(f"inside {'/'.join(parts[:end])}, which was refused")

    def _bits(self, member: Member) -> int:
        """The mode to restore; a warning if setuid/setgid/sticky bits are dropped."""
        message = special_bits_message(member.mode)
        if message:
            self.summary.warnings.append(f"{shown(member.name)}: {message}")
        return member.mode & 0o777

    def _owner(self, member: Member) -> tuple[int | None, int | None]:
        return (member.uid, member.gid) if self.keep_owners else (None, None)

    def file(self, member: Member, parts: list[str]) -> None:
        parent, name = self.chain.enter(parts[:-1]), parts[-1]
        fd = _create(lambda: os.open(name, FILE_FLAGS, 0o600, dir_fd=parent), parent, name, parts)
        try:
            write = os.write
            for piece in self.reader.chunks():
                while piece:
                    piece = piece[write(fd, piece):]
            apply_attributes(fd, self._bits(member), *self._owner(member), member.mtime_ns)
        finally:
            os.close(fd)
        self.summary.files += 1
        self.summary.bytes += member.size

    def directory(self, member: Member, parts: list[str]) -> None:
        self.chain.enter(parts)
        self.chain.set_attributes(self._bits(member), member.uid, member.gid, member.mtime_ns)
        self.summary.directories += 1

    def dumpdir(self, member: Member, parts: list[str]) -> None:
        """The folder made (in place of a non-folder staged under its name), then purged to its entries."""
        entries = dumpdir.parse(member.dumpdir if member.dumpdir is not None else self._data(member))
        parent, name = self.chain.enter(parts[:-1]), parts[-1]
        try:
            if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                dumpdir.remove(parent, name, False)
                self.removed("/".join(parts), False)
        except FileNotFoundError:
            pass
        fd = self.chain.enter(parts)
        dumpdir.purge(fd, entries, lambda entry, is_dir: self._purged(parts + [entry], is_dir))
        self.chain.set_attributes(self._bits(member), member.uid, member.gid, member.mtime_ns)
        self.summary.directories += 1

    def _data(self, member: Member) -> bytes:
        if member.size > dumpdir.MAX_DUMPDIR:
            raise Refused(f"dumpdir of {member.size} bytes: too large")
        return b"".join(bytes(piece) for piece in self.reader.chunks())

    def _purged(self, parts: list[str], is_dir: bool) -> None:
        if is_dir:
            self.chain.forget(parts)
        self.removed("/".join(parts), is_dir)

    def symlink(self, member: Member, parts: list[str]) -> None:
        problem = symlink_problem(len(parts) - 1, member.linkname)
        if problem:
            raise Refused(problem)
        parent, name = self.chain.enter(parts[:-1]), parts[-1]
        _create(lambda: os.symlink(member.linkname, name, dir_fd=parent), parent, name, parts)
        if self.keep_owners:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, ns=(member.mtime_ns, member.mtime_ns), dir_fd=parent, follow_symlinks=False)
        self.summary.symlinks += 1

    def hardlink(self, member: Member, parts: list[str]) -> None:
        """Only to a regular file already written by this restore (everything in staging was)."""
        source = parts_of(member.linkname, "hard link target")
        if not source:
            raise Refused("hard link to the restore folder itself")
        source_fd = self._existing_parent(source)
        try:
            try:
                st = os.stat(source[-1], dir_fd=source_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise Refused(f"hard link to {shown(member.linkname)}, which was not extracted") from None
            if not stat.S_ISREG(st.st_mode):
                raise Refused(f"hard link to {shown(member.linkname)}, which is not a regular file")
            parent, name = self.chain.enter(parts[:-1]), parts[-1]
            _create(lambda: os.link(source[-1], name, src_dir_fd=source_fd, dst_dir_fd=parent,
                                    follow_symlinks=False), parent, name, parts)
        finally:
            if source_fd != self.root_fd:
                os.close(source_fd)
        self.summary.hardlinks += 1

    def _existing_parent(self, parts: list[str]) -> int:
        """The descriptor of the folder holding `parts` (a hard link target); Refused if it is not there."""
        fd = self.root_fd
        try:
            for index, name in enumerate(parts[:-1]):
                next_fd = open_dir(fd, name, "/".join(parts[:index + 1]), create=False)
                if fd != self.root_fd:
                    os.close(fd)
                fd = next_fd
        except (FileNotFoundError, Refused):
            if fd != self.root_fd:
                os.close(fd)
            raise Refused(f"hard link to {shown('/'.join(parts))}, which was not extracted") from None
        return fd


def _selected_as(parts: list[str]) -> list[str]:
    """The path a selection judges a member by: a differential's delta member by the file it makes."""
    if parts[0] == DELTA_DIR and len(parts) > 1:
        return parts[1:-1] + [parts[-1].rsplit(DELTA_SUFFIX, 1)[0]]
    return parts


def _quiet_parts(name: str) -> list[str] | None:
    try:
        return parts_of(name)
    except Refused:
        return None


def _create(make: Callable, parent: int, name: str, parts: list[str]):
    """make() a new entry; an earlier member of the same name (not a folder) is replaced, never written
    through: it is unlinked first."""
    try:
        return make()
    except FileExistsError:
        if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise Refused(f"{'/'.join(parts)} is already a folder") from None
        os.unlink(name, dir_fd=parent)
        return make()
