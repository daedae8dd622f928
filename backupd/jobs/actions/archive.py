"""The archive step of a backup: fresh sources -> one .tar.zst in the spool, written under a temporary
name and renamed once complete."""
from __future__ import annotations

import errno
import logging
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ...archive.encrypt import AgeEncryptor, EncryptError
from ...cancel import Cancelled, CancelToken
from ...config import SourceConfig
from ...sources import registry as source_registry
from ...sources.base import SourceError, WriteError
from ...util.files import free_space
from ...util.names import ARCHIVE_SUFFIX, DIFF_MARK, archive_suffix
from ...util.units import human_size
from ..errors import RunFailed
from ..result import Category, RunProgress
from ..spool import Spool

log = logging.getLogger("backupd.run")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def archive_name(job: str, started, run_id: str, encrypted: bool = False, base_run_id: str = "") -> str:
    """`<job>-<host>-<UTC stamp>-<run8>`, with `-diff-<base run8>` for a differential against that full."""
    diff = f"{DIFF_MARK}{base_run_id[:8]}" if base_run_id else ""
    return (f"{job}-{host_name()}-{started.strftime('%Y%m%dT%H%M%SZ')}-{run_id[:8]}{diff}"
            f"{archive_suffix(encrypted)}")


def archive_pattern(job: str, host: str) -> re.Pattern:
    """What archive_name() gives for `job` on `host`, encrypted (.age) or not, and nothing else."""
    return re.compile(f"{re.escape(job)}-{re.escape(host)}-[0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]{{1,8}}"
                      f"(?:{DIFF_MARK}[0-9a-f]{{1,8}})?{re.escape(ARCHIVE_SUFFIX)}(?:\\.age)?")


@dataclass(frozen=True)
class ArchiveContext:
    """What writing an archive needs."""

    sources: list[SourceConfig]
    spool: Spool
    level: int                  # zstd compression level
    header: dict                # the manifest's header (job, run id, host, ...)
    cancel: CancelToken
    progress: RunProgress
    log_extra: dict
    encrypt_to: tuple[str, ...] = ()     # age recipients; empty: not encrypted
    differ: object | None = None         # archive.differ.Differ: a differential against that full
    keep_manifest: Path | None = None    # a full's manifest copy goes there (differential jobs)
    blocks_for: object | None = None     # (member) -> bool: a full's delta files, whose blocks are listed


def write_archive(ctx: ArchiveContext, name: str, run_id: str) -> tuple[Path, object]:
    """Write and commit the archive `name` in the spool; returns (its path, ArchiveStats). On any error
    nothing of it is left in the spool."""
    try:
        stats = _write(ctx, name, ctx.spool.workdir(run_id))
    except BaseException as exc:
        ctx.spool.discard(name)
        if isinstance(exc, WriteError):
            raise RunFailed(Category.ARCHIVE, _write_failed(exc, ctx.spool.root)) from exc
        if isinstance(exc, EncryptError):
            raise RunFailed(Category.ARCHIVE, f"cannot encrypt the archive: {exc}") from exc
        raise
    return ctx.spool.commit(name), stats


def _write_failed(exc: WriteError, spool: Path) -> str:
    """What failed, where, and for a full disk the room there is (now that the partial archive is gone,
    all of it was the archive's to use: it needs more) and how far the archive got."""
    message = f"cannot write {exc.filename or spool}: {exc.strerror}"
    if exc.errno not in _NO_SPACE:
        return message
    reached = f" (it failed after {human_size(exc.written)})" if exc.written else ""
    return (f"{message}; the archive needs more than the {human_size(free_space(spool))} free there{reached}: "
            "make room in the state directory or move it to a larger file system")


def _write(ctx: ArchiveContext, name: str, workdir: Path):
    from ...archive.writer import ArchiveWriter   # zstandard loads only when a run needs it
    sources = _build_sources(ctx.sources)
    writer = ArchiveWriter(ctx.spool.partial_path(name), level=ctx.level, header=ctx.header,
                           cancel=ctx.cancel, on_warning=lambda member, message: _warned(ctx, member, message),
                           encryptor=AgeEncryptor(ctx.encrypt_to) if ctx.encrypt_to else None,
                           differ=ctx.differ, blocks_for=ctx.blocks_for)
    ctx.progress.set("archiving", counter=lambda: writer.bytes_in)
    with writer:
        for source in sources:
            _write_source(ctx, writer, source, workdir)
        stats = writer.finish(keep_manifest=ctx.keep_manifest)
    log.info("archive written", extra={**ctx.log_extra, "archive": name, "size": stats.size,
                                       "sha256": stats.sha256, "members": stats.members,
                                       "bytes_in": stats.bytes_in, "warnings": stats.warning_count})
    return stats


def _build_sources(configs: list[SourceConfig]) -> list:
    try:
        return [source_registry.build(cfg) for cfg in configs]
    except Exception as exc:
        raise RunFailed(Category.CONFIG, f"cannot set up the sources: {exc}") from exc


def _write_source(ctx: ArchiveContext, writer, source, workdir: Path) -> None:
    started = time.monotonic()
    before = writer.bytes_in
    try:
        sink = writer.source(source.name)
        source.write(sink, workdir)
        sink.close()
    except SourceError as exc:
        raise RunFailed(Category.SOURCE, f"source '{source.name}': {exc}") from exc
    except (Cancelled, RunFailed, WriteError, EncryptError):
        raise
    except OSError as exc:
        raise RunFailed(Category.ARCHIVE, f"cannot write the archive while reading source "
                        f"'{source.name}': {exc}; check free space in the state directory") from exc
    log.info("source archived", extra={**ctx.log_extra, "source": source.name,
                                       "bytes": writer.bytes_in - before,
                                       "seconds": round(time.monotonic() - started, 3)})


def _warned(ctx: ArchiveContext, member: str, message: str) -> None:
    log.warning("source warning", extra={**ctx.log_extra, "member": member, "warning": message})
