"""backupctl restore of a differential: its full first, then the differential over it, in one staging
folder (backupd.restore.session); nothing lands in DIR unless both archives and the tree they make verify.

Through the daemon or with --config, the differential's stored bytes come first (the daemon's fetch says
what BACKUP is only as it starts sending it): they are spooled into a file beside the staging folder (inside
DIR, removed at the end; a differential is small) and their sha256 checked against the record, so that a
corrupted differential is refused before its full is fetched. Then the full is fetched by name, in the same
way (from the destination asked for, else from the first other one that has it), and extracted; then the
spooled differential. With --archive FILE --base FULL_FILE both are files."""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Callable

from backupd.daemon import protocol as proto
from backupd.restore import ArchiveError, ArchiveReader, RestoreError, StagedRestore
from backupd.restore.check import ArchiveCheck, manifest_header
from backupd.restore.session import Extracted
from backupd.util.names import DIFFERENTIAL, MANIFEST_NAME, base_run_of, kind_of, run_in_name

from . import restore_origins as origins

SPOOL_PREFIX = ".backupd-restore-differential-"
BLOCK = 1 << 20
_SPOOL_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# stream_of(info, chunks) -> (the tar.zst stream, the StoredBytes it is read from): decryption and the
# guard on the source's errors, as restore.py does them for a single archive
StreamOf = Callable[[dict, object], tuple]


def is_differential(info: dict) -> bool:
    return info.get("kind") == DIFFERENTIAL or kind_of(info.get("name", "")) == DIFFERENTIAL


def staged(options: dict) -> StagedRestore:
    return StagedRestore(options["to"], sources=options.get("sources", ()), paths=options.get("paths", ()),
                         force=options.get("force", False), track=True)


def restore_fetched(info: dict, chunks, options: dict, stream_of: StreamOf, fetch: Callable, progress):
    """Restore differential `info` (its stored bytes `chunks` arriving), its full fetched by `fetch(options,
    consume)` (the way the differential was); (info, summary)."""
    base = info.get("base") or ""
    if not base:
        raise RestoreError(f"{info['name']} is a differential, and no destination lists its full (run "
                           f"{base_run_of(info['name'])}...); nothing restored")
    restore = staged(options)
    spool = None
    try:
        spool = _spool(restore, info, chunks, progress)
        full = _fetch_full(restore, info, options, stream_of, fetch, progress)
        progress.begin(info)
        stream, stored = stream_of(info, _blocks(spool))
        made = restore.extract_differential(stream, full, info["name"], expected_sha256=info["sha256"] or None,
                                            stored=stored, progress=progress)
        _unspool(restore, spool)
        spool = None
        return info, restore.commit(made.sha256)
    except BaseException:
        if spool is not None:
            _unspool(restore, spool)
        restore.abort()
        raise
    finally:
        progress.clear()


def _spool(restore: StagedRestore, info: dict, chunks, progress) -> tuple[int, str]:
    """The differential's stored bytes written beside the staging folder, their sha256 checked."""
    name = SPOOL_PREFIX + secrets.token_hex(6)
    fd = os.open(name, _SPOOL_FLAGS, 0o600, dir_fd=restore.staged.fd)
    digest, done = hashlib.sha256(), 0
    progress.begin(info)
    try:
        for chunk in chunks:
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            done += len(chunk)
            progress(done)
    except BaseException:
        _unspool(restore, (fd, name))
        raise
    finally:
        progress.clear()
    expected = (info.get("sha256") or "").lower()
    if expected and digest.hexdigest() != expected:
        _unspool(restore, (fd, name))
        raise RestoreError(f"archive does not verify: {info['name']}'s sha256 is {digest.hexdigest()}, the record "
                           f"says {expected}; nothing restored")
    os.lseek(fd, 0, os.SEEK_SET)
    return fd, name


def _blocks(spool: tuple[int, str]):
    fd = spool[0]
    while block := os.read(fd, BLOCK):
        yield block


def _unspool(restore: StagedRestore, spool: tuple[int, str]) -> None:
    fd, name = spool
    os.close(fd)
    try:
        os.unlink(name, dir_fd=restore.staged.fd)
    except FileNotFoundError:
        pass


def _fetch_full(restore: StagedRestore, info: dict, options: dict, stream_of: StreamOf, fetch, progress) -> Extracted:
    base = info["base"]

    def consume(full_info: dict, chunks) -> Extracted:
        recorded, expected = (info.get("base_sha256") or "").lower(), (full_info.get("sha256") or "").lower()
        if recorded and expected and recorded != expected:
            raise RestoreError(f"{base} at {full_info.get('destination')} is not the full {info['name']} was "
                               f"made against (sha256 {expected}, the record says {recorded}); nothing restored")
        progress.begin(full_info)
        stream, stored = stream_of(full_info, chunks)
        extracted, _ = restore.extract(stream, expected_sha256=expected or recorded or None, stored=stored,
                                       progress=progress)
        progress.clear()
        return extracted

    pinned = options.get("destination")
    for destination in (pinned, None) if pinned else (None,):   # the destination asked for, then any other
        try:
            return fetch({**options, "backup": base, "destination": destination}, consume)
        except (proto.RemoteError, origins.OriginError) as exc:
            if destination is None or not _not_found(exc):
                raise RestoreError(f"cannot restore {info['name']}: its full {base} cannot be fetched: "
                                   f"{getattr(exc, 'message', None) or exc}; nothing restored") from None


def _not_found(exc: Exception) -> bool:
    """A failure to find the full, before any of it was sent (so another destination may be asked)."""
    return isinstance(exc, origins.OriginError) or getattr(exc, "code", "") == "not_found"


def needs_base(options: dict, stream_of: StreamOf) -> str:
    """The one line for --archive of a differential without --base: its full named (from its manifest,
    read through without extracting anything; else the run id its name gives)."""
    path = Path(options["archive"])
    full = f"the full of run {base_run_of(path.name)}..."
    try:
        header = origins.via_file(options, lambda info, chunks: manifest_header_of(stream_of(info, chunks)[0]))
        base = header.get("base") if isinstance(header.get("base"), dict) else {}
        full = base.get("archive") or full
    except (RestoreError, ArchiveError, origins.OriginError, OSError):
        pass
    return (f"{path.name} is a differential backup: restoring it needs its full, {full}; pass that file with "
            "--base FULL_FILE; nothing restored")


def manifest_header_of(stream) -> dict:
    """The MANIFEST.json header of an archive stream, its members skipped ({} if it has none)."""
    with ArchiveReader(stream) as reader:
        for member in reader:
            if member.name.removeprefix("./") == MANIFEST_NAME:
                check = ArchiveCheck()
                try:
                    check.take_manifest(reader)
                    return manifest_header(check.manifest)
                finally:
                    check.close()
    return {}


def restore_files(options: dict, stream_of: StreamOf, progress):
    """--archive FILE --base FULL_FILE; (info, summary)."""
    path, base = Path(options["archive"]), options["base"]
    _same_set(path, Path(base))
    restore = staged(options)
    try:
        full = origins.via_file({**options, "archive": base}, lambda info, chunks: _extract(
            restore, info, chunks, stream_of, progress))
        made = origins.via_file(options, lambda info, chunks: _extract(
            restore, info, chunks, stream_of, progress, full))
        info = {"name": path.name, "job": "", "run_id": "", "destination": str(path), "base": Path(base).name}
        return info, restore.commit(made.sha256)
    except BaseException:
        restore.abort()
        raise


def _extract(restore: StagedRestore, info: dict, chunks, stream_of: StreamOf, progress,
             full: Extracted | None = None) -> Extracted:
    progress.begin(info)
    try:
        stream, stored = stream_of(info, chunks)
        expected = info["sha256"] or None
        if full is None:
            extracted, _ = restore.extract(stream, expected_sha256=expected, stored=stored, progress=progress)
            return extracted
        return restore.extract_differential(stream, full, info["name"], expected_sha256=expected, stored=stored,
                                            progress=progress)
    finally:
        progress.clear()


def _same_set(differential: Path, full: Path) -> None:
    """When both files have backupd's names: the full's run id must be the one the differential names."""
    if kind_of(full.name) == DIFFERENTIAL:
        raise RestoreError(f"--base {full.name} is a differential; give its full; nothing restored")
    base_run, full_run = base_run_of(differential.name), run_in_name(full.name)
    if base_run and full_run and not (full_run.startswith(base_run) or base_run.startswith(full_run)):
        raise RestoreError(f"{full.name} is not the full of {differential.name} (that is the full of run "
                           f"{base_run}...); nothing restored")
