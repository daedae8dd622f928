"""Safe extraction of a backupd archive into a folder, by directory descriptors, verified before it counts.

Rules (a refused member is named with its reason, one line each, and skipped; nothing is written outside
the folder): absolute names, '..' or empty components, NUL bytes; symlinks whose target is absolute or leaves
the folder (resolved from the link's folder); hard links except to regular files this restore already
wrote; anything below a symlink or a refused member (impossible by construction: every component is opened
with O_NOFOLLOW); devices, FIFOs and other special members. Setuid, setgid and sticky bits are never
restored: the file or folder is extracted without them and a warning names it. Modes and mtimes are kept
(a folder's after its contents), owners only when keep_owners (default: running as root), from the
archive's numeric ids. MANIFEST.json is checked, not extracted.

Everything goes into a staging folder inside the target first; only when the archive's sha256 (if given)
and every member against MANIFEST.json verified is the staged tree moved into place."""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable

from .check import ArchiveCheck, VerifyReport
from .feed import StoredBytes
from .reader import ArchiveError, ArchiveReader, Member
from .rules import REFUSED_TYPES, Refused, Selection, parts_of, special_bits_message, symlink_problem
from .staging import DirChain, RestoreError, Target, apply_attributes, open_dir

__all__ = ["RestoreError", "RestoreSummary", "extract_archive"]

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


class _Extractor:
    """Writes the members of one archive into the staging folder."""

    def __init__(self, reader: ArchiveReader, target: Target, selection: Selection, keep_owners: bool,
                 summary: RestoreSummary) -> None:
        self.reader = reader
        self.chain = DirChain(target.staging_fd, keep_owners)
        self.root_fd = target.staging_fd
        self.selection = selection
        self.keep_owners = keep_owners
        self.summary = summary
        self.refused_names: set[tuple[str, ...]] = set()
        self.handlers = {"file": self.file, "dir": self.directory, "symlink": self.symlink,
                         "hardlink": self.hardlink}

    def member(self, member: Member) -> None:
        try:
            parts = parts_of(member.name)
            if not parts:
                return                      # './': the restore folder itself
            if not self.selection(parts):
                self.summary.skipped += 1
                return
            self._check_parents(parts)
            handler = self.handlers.get(member.type)
            if handler is None:
                raise Refused(REFUSED_TYPES.get(member.type, f"unsupported member type {member.type}"))
            handler(member, parts)
        except Refused as reason:
            self.summary.refused.append(f"{shown(member.name)}: {reason}")
            if parts_ok := _quiet_parts(member.name):
                self.refused_names.add(tuple(parts_ok))

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


def extract_archive(stream: BinaryIO | Iterable[bytes], target: os.PathLike | str, *,
                    expected_sha256: str | None = None, sources: Iterable[str] = (),
                    paths: Iterable[str] = (), force: bool = False, keep_owners: bool | None = None,
                    progress: Callable[[int], None] | None = None,
                    stored: StoredBytes | None = None) -> RestoreSummary:
    """Restore the archive read from `stream` into `target` (created if missing; refused if not empty
    unless `force`). `sources`: top-level folders to restore; `paths`: fnmatch globs on member names.
    Raises RestoreError, with the target left as it was, if the archive or a member does not verify.
    `progress(compressed bytes read)` is called from the decompression thread. `stored`: the stored bytes
    `stream` is (or is decrypted from); their sha256, not the stream's, is compared with expected_sha256."""
    started = time.monotonic()
    keep_owners = os.geteuid() == 0 if keep_owners is None else keep_owners
    selection = Selection(sources, paths)
    summary = RestoreSummary()
    staged = Target(target, force)
    reader = ArchiveReader(stream, progress=progress, hash_input=stored is None)
    check = ArchiveCheck()
    try:
        extractor = _Extractor(reader, staged, selection, keep_owners, summary)
        try:
            _extract_all(reader, check, extractor)
        except RestoreError as exc:             # only the decryption raises it there
            raise _undecrypted(exc, stream, stored, expected_sha256) from None
        sha256 = reader.sha256 if stored is None else stored.sha256
        _verified(check.compare(VerifyReport(expected_sha256=expected_sha256, sha256=sha256)))
        if not selection.everything and not (summary.files + summary.directories + summary.symlinks
                                             + summary.hardlinks + len(summary.refused)):
            raise RestoreError("no member matches the --source / --path selection; nothing restored")
        summary.warnings += staged.commit(extractor.chain.deferred, keep_owners)
    except ArchiveError as exc:
        staged.close()
        raise RestoreError(f"{exc}; nothing restored") from None
    except BaseException:
        staged.close()
        raise
    finally:
        check.close()
        reader.close()
    summary.archive_sha256 = sha256
    summary.seconds = time.monotonic() - started
    return summary


def _extract_all(reader: ArchiveReader, check: ArchiveCheck, extractor: _Extractor) -> None:
    try:
        for member in reader:
            if check.is_manifest(member):
                check.take_manifest(reader)
                continue
            extractor.member(member)
            reader.skip()
            check.record(member)
    finally:
        extractor.chain.leave()


def _undecrypted(exc: RestoreError, stream, stored: StoredBytes | None, expected: str | None) -> RestoreError:
    """The error for a decryption that failed: the rest of the stored bytes is read, as a corrupt plain
    archive's is, and a sha256 that is not the record's is named first. Not after a wrong identity: the
    archive may well be intact, and nothing past its header was read."""
    from .decrypt import NoMatchingIdentity
    if stored is None or stream is stored or expected is None or isinstance(exc, NoMatchingIdentity):
        return exc
    stream.close()
    try:
        stored.drain()
    except Exception:           # the source broke as well: the decryption's failure is reported
        return exc
    if stored.sha256 == expected.lower():
        return exc
    return RestoreError(f"archive does not verify: archive sha256 is {stored.sha256}, the record says "
                        f"{expected} ({exc}); nothing restored")


def _verified(report: VerifyReport) -> None:
    if report.ok:
        return
    problems = report.problems()
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    error = RestoreError(f"archive does not verify: {problems[0]}{more}; nothing restored")
    error.report = report
    raise error
