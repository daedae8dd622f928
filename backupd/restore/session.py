"""One restore into a folder: archives extracted in turn into its staging folder, each verified against
its MANIFEST.json, the staged tree moved into place only at the end (commit), else removed (abort).

A full alone: extract_archive(). A differential: its full first, then the differential itself (its dumpdirs
remove what was deleted since the full), then its deltas applied (delta.py); with `track`, every staged
path is recorded (ledger.py) and the staged tree must then be exactly the differential's manifest."""
from __future__ import annotations

import os
import shutil
import time
from typing import BinaryIO, Callable, Iterable, Iterator

from ..util.names import DELTA_DIR, DIFFERENTIAL, FULL
from .check import ArchiveCheck, VerifyReport, manifest_header, manifest_members, record_of
from .differential import Delta, base_of, compare_held, is_delta_member
from .extract import Extractor, RestoreSummary
from .feed import StoredBytes
from .ledger import BATCH, Ledger, key
from .reader import ArchiveError, ArchiveReader
from .rules import Refused, Selection, parts_of
from .staging import DirChain, RestoreError, Target
from . import dumpdir
from .delta import apply_deltas, open_folder

MAX_WARNINGS = 100         # paths named one by one in a summary's warnings

_TRACKED = {"file", "dir", "dumpdir", "symlink"}


class Extracted:
    """What one archive of the restore was: its stored sha256 and its manifest's header."""

    def __init__(self, sha256: str, header: dict) -> None:
        self.sha256, self.header = sha256, header
        self.kind = header.get("kind") or "full"


class StagedRestore:
    """The restore folder's staging tree, filled by extract() (one archive after another), then commit()
    or abort(). `track`: record every staged path (a differential's restore needs it)."""

    def __init__(self, target: os.PathLike | str, *, sources: Iterable[str] = (), paths: Iterable[str] = (),
                 force: bool = False, keep_owners: bool | None = None, track: bool = False) -> None:
        self.started = time.monotonic()
        self.keep_owners = os.geteuid() == 0 if keep_owners is None else keep_owners
        self.selection = Selection(sources, paths)
        self.summary = RestoreSummary()
        self.staged = Target(target, force)
        self.chain = DirChain(self.staged.staging_fd, self.keep_owners, remember=track)
        self.ledger = Ledger() if track else None
        self.refused: set[bytes] = set()
        self._open = True

    def extract(self, stream: BinaryIO | Iterable[bytes], *, expected_sha256: str | None = None,
                progress: Callable[[int], None] | None = None, stored: StoredBytes | None = None,
                deltas: list[Delta] | None = None, keep_check: bool = False) -> tuple[Extracted, ArchiveCheck]:
        """Extract one archive into the staging folder and verify it; RestoreError if it does not verify
        (then abort()). `deltas` receives a differential's delta entries. The check is closed unless
        `keep_check` (its spooled manifest is then the caller's to read, and close)."""
        reader = ArchiveReader(stream, progress=progress, hash_input=stored is None)
        check = ArchiveCheck()
        try:
            extractor = Extractor(reader, self.chain, self.selection, self.summary, self._removed)
            try:
                self._extract_all(reader, check, extractor)
            except RestoreError as exc:             # only the decryption raises it there
                raise _undecrypted(exc, stream, stored, expected_sha256) from None
            self.refused.update(key("/".join(parts)) for parts in extractor.refused_names)
            sha256 = reader.sha256 if stored is None else stored.sha256
            report = VerifyReport(expected_sha256=expected_sha256, sha256=sha256)
            header = manifest_header(check.manifest) if check.manifest is not None else {}
            if header.get("kind") == DIFFERENTIAL:
                report.members, report.bytes = check.members, check.bytes
                members = manifest_members(check.manifest)
                if self.ledger is not None:         # the same pass gives the complete state to compare with
                    members = _teed(members, self.ledger, self._selected)
                compare_held(check.logged(), members, report, deltas)
            else:
                check.compare(report)
            _verified(report)
        except ArchiveError as exc:
            check.close()
            sha256 = reader.sha256 if stored is None else stored.sha256
            if expected_sha256 and sha256 != expected_sha256.lower():     # named first: the likely cause
                raise RestoreError(f"archive does not verify: archive sha256 is {sha256}, the record says "
                                   f"{expected_sha256} ({exc}); nothing restored") from None
            raise RestoreError(f"{exc}; nothing restored") from None
        except BaseException:
            check.close()
            raise
        finally:
            reader.close()
        if not keep_check:
            check.close()
        return Extracted(sha256, header), check

    def _extract_all(self, reader: ArchiveReader, check: ArchiveCheck, extractor: Extractor) -> None:
        ledger = self.ledger
        try:
            for member in reader:
                if check.is_manifest(member):
                    check.take_manifest(reader)
                    continue
                written = extractor.member(member)
                reader.skip()
                check.record(member)
                if written and ledger is not None and member.type in _TRACKED and not is_delta_member(member.name):
                    ledger.add((member.name, member.type, member.size, member.sha256 or "", member.linkname))
        finally:
            self.chain.leave()

    def _removed(self, path: str, is_dir: bool) -> None:
        if self.ledger is not None:
            self.ledger.remove(path, is_dir)

    def complete(self, check: ArchiveCheck, deltas: list[Delta], name: str) -> None:
        """After a differential: its deltas applied, the delta members removed, and the staged tree
        compared with its manifest (the complete state); RestoreError naming what differs."""
        problems = apply_deltas(self, deltas)
        try:
            shutil.rmtree(DELTA_DIR, dir_fd=self.staged.staging_fd)
        except FileNotFoundError:
            pass
        self.chain.forget([DELTA_DIR])
        if self.ledger is not None:
            self._drop_extras(name)
            problems += self.ledger.compare(self.refused)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise RestoreError(f"the restored tree is not the one {name} describes: {problems[0]}{more}; "
                               "nothing restored")

    def _drop_extras(self, name: str) -> None:
        """What the full left that the differential's complete state does not hold (it vanished while the
        differential was being made, after its folder was listed): removed, each with a warning, so the tree
        is that state. A member of the differential itself that its manifest does not list was refused by
        the held check already."""
        for path, is_dir in self.ledger.extras(self.refused):
            parts = parts_of(path)
            folder = open_folder(self.chain.root_fd, parts[:-1], path)
            try:
                dumpdir.remove(folder, parts[-1], is_dir)
            except FileNotFoundError:
                pass
            finally:
                os.close(folder)
            self.ledger.remove(path, is_dir)
            if len(self.summary.warnings) < MAX_WARNINGS:
                self.summary.warnings.append(f"{path}: in the full, not in {name} (gone while it was made); "
                                             "not restored")

    def extract_differential(self, stream, full: Extracted, name: str, **options) -> Extracted:
        """Extract differential `name` over its `full` (extracted before), apply its deltas and check the
        staged tree against its manifest; RestoreError if anything does not verify (then abort())."""
        if full.kind != FULL:
            raise RestoreError(f"the base restored before {name} is not a full backup; nothing restored")
        deltas: list[Delta] = []
        made, check = self.extract(stream, deltas=deltas, keep_check=True, **options)
        try:
            if made.kind != DIFFERENTIAL:
                raise RestoreError(f"{name} is not a differential backup; nothing restored")
            try:
                base = base_of(made.header)
            except ArchiveError as exc:
                raise RestoreError(f"{exc}; nothing restored") from None
            if base["sha256"].lower() != full.sha256:
                raise RestoreError(f"{name} is a differential of {base['archive']} (sha256 {base['sha256']}), "
                                   f"not of the full given (sha256 {full.sha256}); nothing restored")
            self.complete(check, deltas, name)
        finally:
            check.close()
        return made

    def _selected(self, records):
        if self.selection.everything:
            yield from records
            return
        for record in records:
            try:
                if self.selection(parts_of(record[0])):
                    yield record
            except Refused:
                continue

    def commit(self, sha256: str) -> RestoreSummary:
        """Move the staged tree into place; the summary."""
        summary = self.summary
        if self.ledger is not None:
            self.ledger.count(summary)
        if not self.selection.everything and not (summary.files + summary.directories + summary.symlinks
                                                  + summary.hardlinks + len(summary.refused)):
            raise RestoreError("no member matches the --source / --path selection; nothing restored")
        summary.warnings += self.staged.commit(self.chain.deferred, self.keep_owners)
        self._open = False
        self._close_ledger()
        summary.archive_sha256 = sha256
        summary.seconds = time.monotonic() - self.started
        return summary

    def abort(self) -> None:
        """Remove the staging folder (and the restore folder if this restore made it)."""
        if self._open:
            self._open = False
            self.chain.leave()
            self.staged.close()
        self._close_ledger()

    def _close_ledger(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None


def _teed(members: Iterator[dict], ledger: Ledger, selected: Callable) -> Iterator[dict]:
    """The manifest's member entries passed through; their records (the selected ones) expected by `ledger`."""
    records: list = []

    def tee() -> Iterator[dict]:
        for entry in members:
            records.append(record_of(entry))
            if len(records) >= BATCH:
                ledger.expect(selected(records))
                records.clear()
            yield entry
        ledger.expect(selected(records))

    return tee()


def restore_set(full: BinaryIO | Iterable[bytes], differential: BinaryIO | Iterable[bytes],
                target: os.PathLike | str, *, name: str = "the differential", full_sha256: str | None = None,
                differential_sha256: str | None = None, **options) -> RestoreSummary:
    """Restore a differential: its `full` then the `differential` (both streams of their stored bytes,
    unencrypted) into `target`; options as extract_archive's (sources, paths, force, keep_owners)."""
    restore = StagedRestore(target, track=True, **options)
    try:
        base, _ = restore.extract(full, expected_sha256=full_sha256)
        made = restore.extract_differential(differential, base, name, expected_sha256=differential_sha256)
        return restore.commit(made.sha256)
    except BaseException:
        restore.abort()
        raise


def extract_archive(stream: BinaryIO | Iterable[bytes], target: os.PathLike | str, *,
                    expected_sha256: str | None = None, sources: Iterable[str] = (),
                    paths: Iterable[str] = (), force: bool = False, keep_owners: bool | None = None,
                    progress: Callable[[int], None] | None = None,
                    stored: StoredBytes | None = None) -> RestoreSummary:
    """Restore the full archive read from `stream` into `target` (created if missing; refused if not empty
    unless `force`). `sources`: top-level folders to restore; `paths`: fnmatch globs on member names.
    Raises RestoreError, with the target left as it was, if the archive or a member does not verify.
    `progress(compressed bytes read)` is called from the decompression thread. `stored`: the stored bytes
    `stream` is (or is decrypted from); their sha256, not the stream's, is compared with expected_sha256.
    A differential is refused (it needs its full: restore_set)."""
    restore = StagedRestore(target, sources=sources, paths=paths, force=force, keep_owners=keep_owners)
    try:
        extracted, _ = restore.extract(stream, expected_sha256=expected_sha256, progress=progress, stored=stored)
        if extracted.kind == DIFFERENTIAL:
            raise RestoreError(needs_base(extracted.header))
        return restore.commit(extracted.sha256)
    except BaseException:
        restore.abort()
        raise


def needs_base(header: dict) -> str:
    base = header.get("base") if isinstance(header.get("base"), dict) else {}
    return (f"this is a differential backup: restoring it needs its full, {base.get('archive') or 'unknown'}; "
            "pass it with --base FULL_FILE; nothing restored")


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
