"""Verifying a stored backup: fetched from a destination, its sha256 checked against the record and every
member against MANIFEST.json; optionally a random sample of its files compared with the live source
(borgmatic's spot check: a changed file is information, a file whose size and mtime are those archived but
whose content differs is a failure). The result is a VerifyRecord (see verify_record.py)."""
from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..config import Config, DirectorySourceConfig
from ..destinations.base import DestinationError
from ..restore import VerifyReport, verify_archive
from ..restore.decrypt import is_encrypted, open_decrypted
from ..restore.reader import Member
from ..util.names import DIFFERENTIAL
from .verify_base import ManifestSeen, base_problems, named_base
from .locate import Located, open_fetch
from .verify_record import VerifyRecord, VerifyStatus

log = logging.getLogger("backupd.verify")
DEFAULT_SAMPLE = 100
READ_BLOCK = 1 << 20


@dataclass
class SourceComparison:
    """What the spot check found; `suspicious` names files whose mtime says they should be identical."""

    suspicious: list[str] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)     # sources with no live files to compare
    sampled: int = 0
    unchanged: int = 0
    changed: int = 0
    missing: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Sampled:
    name: str
    path: Path
    size: int
    sha256: str
    mtime_ns: int


class Sampler:
    """A uniform random sample (reservoir) of `size` regular files of directory sources, as archived."""

    def __init__(self, config: Config, job_sources, size: int, rng: random.Random | None = None) -> None:
        self.size, self.rng, self.seen = size, rng or random.SystemRandom(), 0
        self.roots = {name: Path(config.sources[name].path) for name in job_sources
                      if isinstance(config.sources.get(name), DirectorySourceConfig)}
        self.not_compared = [name for name in job_sources if name not in self.roots]
        self.chosen: list[_Sampled] = []

    def __call__(self, member: Member) -> None:
        if member.type == "file":
            self.entry(member.name, member.size, member.sha256, member.mtime_ns)

    def entry(self, name: str, size: int, sha256: str, mtime_ns: int) -> None:
        """A regular file as archived (a member, or a differential's manifest entry)."""
        source, _, rest = name.removeprefix("./").partition("/")
        if source not in self.roots or not rest:
            return
        self.seen += 1
        slot = len(self.chosen) if len(self.chosen) < self.size else self.rng.randrange(self.seen)
        if slot < self.size:
            self.chosen[slot:slot + 1] = [_Sampled(name, self.roots[source] / rest, size, sha256, mtime_ns)]

    def compare(self) -> SourceComparison:
        result = SourceComparison(sampled=len(self.chosen), not_compared=self.not_compared)
        for entry in self.chosen:
            live = live_file(entry.path)
            if live is None:
                result.missing += 1
            elif live[2] == entry.sha256:
                result.unchanged += 1
            elif live[0] == entry.size and same_mtime(live[1], entry.mtime_ns):
                result.suspicious.append(entry.name)
            else:
                result.changed += 1
        return result


def same_mtime(live_ns: int, archived_ns: int) -> bool:
    """Equal, to the second when the archive kept whole seconds only."""
    return live_ns == archived_ns or (archived_ns % 10**9 == 0 and live_ns // 10**9 == archived_ns // 10**9)


def live_file(path: Path) -> tuple[int, int, str] | None:
    """(size, mtime_ns, sha256) of a regular file, never through a symlink; None if it is not one now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        digest = hashlib.sha256()
        while block := file.read(READ_BLOCK):
            digest.update(block)
    return st.st_size, st.st_mtime_ns, digest.hexdigest()


def verify_backup(found: Located, config: Config, state_dir, *, trigger: str = "manual", sample: int = 0,
                  identity: str | None = None, cancel=None,
                  progress: Callable[[int], None] | None = None) -> VerifyRecord:
    """Fetch `found` from its first destination that has it and verify it (see the module's docstring).
    Raises LocateError when no destination can give it; a failure midway is an `error` record."""
    fetched = open_fetch(found, config, state_dir, cancel)
    try:
        return verify_chunks(found, fetched.name, fetched.chunks, config, trigger=trigger, sample=sample,
                             identity=identity, progress=progress)
    finally:
        fetched.close()


def verify_chunks(found: Located, destination: str, chunks, config: Config | None, *, trigger: str = "manual",
                  sample: int = 0, identity: str | None = None, progress: Callable[[int], None] | None = None,
                  bare: bool = False) -> VerifyRecord:
    """Verify the stored bytes `chunks` of `found`; `sample` files compared with the live sources of
    its job in `config`. A DestinationError midway makes an `error` record. `bare`: a file alone, whose
    full (if it is a differential) nothing records."""
    record = VerifyRecord(job=found.job, archive=found.name, destination=destination, run_id=found.run_id,
                          trigger=trigger)
    job = config.jobs.get(found.job) if config is not None else None
    sampler = Sampler(config, job.sources, sample) if sample and job is not None else None
    seen = ManifestSeen(sampler if found.kind == DIFFERENTIAL else None)
    try:
        report = _verified(chunks, found, identity, progress, None if seen.sampler else sampler, seen)
    except DestinationError as exc:
        return record.finish(VerifyStatus.ERROR, [f"could not finish: {exc}"])
    record.members, record.bytes, record.sha256 = report.members, report.bytes, report.sha256
    problems = report.problems()
    if found.kind == DIFFERENTIAL:
        record.base = found.base or named_base(seen.header)
        problems += [] if bare else base_problems(found, seen.header, destination)
    if sampler is not None:
        comparison = sampler.compare()
        record.against_source = comparison.to_dict()
        problems += [f"differs from the live source though its size and mtime are unchanged: {name}"
                     for name in comparison.suspicious]
    return record.finish(VerifyStatus.FAILED if problems else VerifyStatus.SUCCESS, problems)


def _verified(chunks, found: Located, identity, progress, sampler, seen):
    """The VerifyReport of the fetched bytes (an encrypted archive without an identity: its sha256 only)."""
    expected = found.sha256 or None
    if not is_encrypted(found.name):
        return verify_archive(chunks, expected, progress=progress, on_member=sampler, on_manifest=seen)
    stored = HashedChunks(chunks)
    if identity is None:        # the members cannot be read without the identity: the stored bytes' sha256 only
        report = VerifyReport(bytes=sum(len(chunk) for chunk in stored))
    else:
        report = verify_archive(open_decrypted(stored, identity), None, progress=progress, on_member=sampler,
                                on_manifest=seen)
    report.sha256, report.expected_sha256 = stored.sha.hexdigest(), expected
    return report


class HashedChunks:
    """Chunks passed through, hashed (the record's sha256 is of the stored, encrypted, file)."""

    def __init__(self, chunks) -> None:
        self.chunks, self.sha = chunks, hashlib.sha256()

    def __iter__(self):
        for chunk in self.chunks:
            self.sha.update(chunk)
            yield chunk
