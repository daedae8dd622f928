"""Members checked against MANIFEST.json, and verify_archive().

MANIFEST.json is the archive's last member, so what was read is logged member by member to a scratch file
(memory stays flat) and compared with the manifest, in archive order, once it has arrived."""
from __future__ import annotations

import json
import struct
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator

from ..archive.manifest import FORMAT
from ..util.names import DIFFERENTIAL
from .reader import ArchiveError, ArchiveReader, Member

MANIFEST_NAME = "MANIFEST.json"
SPOOL_IN_MEMORY = 4 << 20       # scratch files stay in memory up to this size
LOG_BLOCK = 1 << 20             # the member log is read back in blocks of this size
PARSE_LINES = 1000              # manifest member lines parsed at a time
_RECORD = struct.Struct("<BIIQ32s")     # kind length, name length, target length, size, digest
_ENCODING = ("utf-8", "surrogateescape")
_MEMBERS_OPEN, _MEMBERS_CLOSE = b'"members": [', (b"],", b"]")


@dataclass
class VerifyReport:
    sha256: str = ""                        # of the whole compressed input
    expected_sha256: str | None = None
    members: int = 0
    bytes: int = 0
    differ: list[str] = field(default_factory=list)     # "NAME: how it differs"
    missing: list[str] = field(default_factory=list)    # in the manifest, not in the archive
    extra: list[str] = field(default_factory=list)      # in the archive, not in the manifest
    error: str | None = None                # the archive could not be read to its end

    @property
    def sha256_ok(self) -> bool:
        return self.expected_sha256 is None or self.sha256 == self.expected_sha256.lower()

    @property
    def ok(self) -> bool:
        return self.sha256_ok and not (self.error or self.differ or self.missing or self.extra)

    def problems(self) -> list[str]:
        """One line per problem, the archive-level ones first."""
        lines = [self.error] if self.error else []
        if not self.sha256_ok:
            lines.append(f"archive sha256 is {self.sha256}, the record says {self.expected_sha256}")
        lines += [f"differs: {line}" for line in self.differ]
        lines += [f"missing: {name}" for name in self.missing]
        lines += [f"not in the manifest: {name}" for name in self.extra]
        return lines


Record = tuple  # (name, kind, size, sha256 hex or "", link target)


class ArchiveCheck:
    """Logs every member read; spools MANIFEST.json; compare() says what differs."""

    def __init__(self) -> None:
        self._log = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)
        self._manifest: BinaryIO | None = None
        self.members = self.bytes = 0

    def close(self) -> None:
        self._log.close()
        if self._manifest is not None:
            self._manifest.close()

    @staticmethod
    def is_manifest(member: Member) -> bool:
        return member.type == "file" and member.name.removeprefix("./") == MANIFEST_NAME

    def take_manifest(self, reader: ArchiveReader) -> None:
        """Spool the current member, MANIFEST.json."""
        if self._manifest is not None:
            raise ArchiveError(f"two {MANIFEST_NAME} members in the archive")
        self._manifest = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)
        for piece in reader.chunks():
            self._manifest.write(piece)

    def record(self, member: Member) -> None:
        """Log a member whose data has been read (or skipped): its sha256 is known. A dumpdir is a folder."""
        if self._manifest is not None:
            raise ArchiveError(f"member {member.name!r} follows {MANIFEST_NAME}, which must be last")
        kind = "dir" if member.type == "dumpdir" else member.type
        name, kind = member.name.removesuffix("/").encode(*_ENCODING), kind.encode(*_ENCODING)
        target = member.linkname.encode(*_ENCODING)
        digest = bytes.fromhex(member.sha256) if member.type == "file" else bytes(32)
        self._log.write(_RECORD.pack(len(kind), len(name), len(target), member.size, digest)
                        + kind + name + target)
        self.members += 1
        self.bytes += member.size if kind == b"file" else 0

    @property
    def manifest(self) -> BinaryIO | None:
        """The spooled MANIFEST.json (None if the archive had none)."""
        return self._manifest

    def compare(self, report: VerifyReport) -> VerifyReport:
        """Fill `report` with what differs between the logged members and the manifest (a differential's:
        the members it holds, see differential.py)."""
        report.members, report.bytes = self.members, self.bytes
        if self._manifest is None:
            report.error = f"no {MANIFEST_NAME} in the archive (not a backupd archive, or cut short)"
            return report
        if manifest_header(self._manifest).get("kind") == DIFFERENTIAL:
            from .differential import compare_held
            compare_held(self.logged(), manifest_members(self._manifest), report)
        else:
            compare_records(self.logged(), manifest_entries(self._manifest), report)
        return report

    def logged(self) -> Iterator[Record]:
        """The logged records, read back a block at a time."""
        self._log.seek(0)
        data, pos = b"", 0
        while block := self._log.read(LOG_BLOCK):
            data, pos = data[pos:] + block, 0
            while pos + _RECORD.size <= len(data):
                kind_len, name_len, target_len, size, digest = _RECORD.unpack_from(data, pos)
                kind_at = pos + _RECORD.size
                name_at = kind_at + kind_len
                target_at = name_at + name_len
                end = target_at + target_len
                if end > len(data):
                    break
                kind = _text(data[kind_at:name_at])
                yield (_text(data[name_at:target_at]), kind, size, digest.hex() if kind == "file" else "",
                       _text(data[target_at:end]))
                pos = end


def _text(raw: bytes) -> str:
    return raw.decode(*_ENCODING)


def manifest_entries(file: BinaryIO) -> Iterator[Record]:
    """The members of a spooled MANIFEST.json as records."""
    return _entries(manifest_members(file))


def manifest_members(file: BinaryIO) -> Iterator[dict]:
    """The member entries of a spooled MANIFEST.json. The writer puts one member per line; that layout
    is read line by line (memory stays flat), any other one as a whole document."""
    head, tail, count = [], [], 0
    for section, line in _sections(file):
        if section == "members":
            count += 1
        else:
            (head if section == "head" else tail).append(line)
    if not tail:
        file.seek(0)
        members = _document(file.read()).get("members")
        if not isinstance(members, list):
            raise ArchiveError(f"{MANIFEST_NAME} has no members list")
        yield from members
        return
    document = _document(b"\n".join(head + tail))
    if document.get("member_count", count) != count:
        raise ArchiveError(f"{MANIFEST_NAME} lists {count} members, its total says {document['member_count']}")
    yield from _loaded_lines(line for section, line in _sections(file) if section == "members")


def manifest_header(file: BinaryIO) -> dict:
    """A spooled MANIFEST.json's fields before its members (kind, base, job, run_id...): in the writer's
    layout, only the lines before the members are read; in any other, the whole document."""
    file.seek(0)
    head = []
    for line in file:
        head.append(line.rstrip(b"\n"))
        if head[-1] == _MEMBERS_OPEN:
            try:
                document = json.loads(b"\n".join(head) + b"]}")
            except ValueError:
                break
            if isinstance(document, dict) and document.get("format") == FORMAT:
                document.pop("members", None)
                return document
            break
    file.seek(0)
    document = _document(file.read())
    document.pop("members", None)
    return document


def _sections(file: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """(head | members | tail, line) for each line, as the writer lays the document out."""
    file.seek(0)
    section = "head"
    for line in file:
        line = line.rstrip(b"\n")
        if section == "members" and line in _MEMBERS_CLOSE:
            section = "tail"
        yield section, line
        if section == "head" and line == _MEMBERS_OPEN:
            section = "members"


def _document(data: bytes) -> dict:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ArchiveError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveError(f"{MANIFEST_NAME} is not a {FORMAT} manifest")
    return document


def _loaded(line: bytes) -> dict:
    try:
        return json.loads(line.removesuffix(b","))
    except ValueError as exc:
        raise ArchiveError(f"{MANIFEST_NAME}: bad member entry: {exc}") from None


def _loaded_lines(lines: Iterable[bytes]) -> Iterator:
    """The member lines' JSON values, parsed PARSE_LINES at a time as one array (the same values as line by
    line; a block that does not give one value a line is parsed line by line, for the error)."""
    block: list[bytes] = []
    for line in lines:
        block.append(line.removesuffix(b","))
        if len(block) == PARSE_LINES:
            yield from _loaded_block(block)
            block = []
    yield from _loaded_block(block)


def _loaded_block(block: list[bytes]) -> list:
    try:
        values = json.loads(b"[" + b",".join(block) + b"]")
    except ValueError:
        values = None
    return values if values is not None and len(values) == len(block) else [_loaded(line) for line in block]


def _entries(members: Iterable) -> Iterator[Record]:
    for entry in members:
        yield record_of(entry)


def record_of(entry) -> Record:
    """The record of one manifest member entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ArchiveError(f"{MANIFEST_NAME}: a member entry without a name")
    return (entry["name"], entry.get("type", "file"), entry.get("size", 0), entry.get("sha256", ""),
            entry.get("target", ""))


def compare_records(archive: Iterator[Record], manifest: Iterator[Record], report: VerifyReport) -> None:
    """In step while the names agree (the writer lists members in archive order); past the first
    disagreement, the rest of both sides by name."""
    for record in archive:
        entry = next(manifest, None)
        if entry is None:
            report.extra.append(record[0])
        elif entry[0] == record[0]:
            _differences(record, entry, report)
        else:
            ours = {record[0]: record, **{r[0]: r for r in archive}}
            theirs = {entry[0]: entry, **{e[0]: e for e in manifest}}
            for name, rest in ours.items():
                other = theirs.pop(name, None)
                report.extra.append(name) if other is None else _differences(rest, other, report)
            report.missing.extend(theirs)
            return
    report.missing.extend(entry[0] for entry in manifest)


def _differences(record: Record, entry: Record, report: VerifyReport) -> None:
    name, kind, size, sha, target = record
    if kind != entry[1]:
        report.differ.append(f"{name}: a {kind} in the archive, a {entry[1]} in the manifest")
    elif kind == "file" and size != entry[2]:
        report.differ.append(f"{name}: {size} bytes in the archive, {entry[2]} in the manifest")
    elif kind == "file" and sha != entry[3]:
        report.differ.append(f"{name}: sha256 differs from the manifest")
    elif target != entry[4]:
        report.differ.append(f"{name}: link target {target!r}, {entry[4]!r} in the manifest")


def verify_archive(stream: BinaryIO | Iterable[bytes], expected_sha256: str | None = None,
                   progress=None, on_member: Callable[[Member], None] | None = None,
                   on_manifest: Callable[[BinaryIO], None] | None = None) -> VerifyReport:
    """Read a whole archive: its sha256 (against `expected_sha256` if given) and every member's size and
    sha256 against MANIFEST.json (a differential's: the members it holds). Problems are reported, not
    raised (except the stream's own errors). `on_member(member)` sees each member once its data was read
    (its sha256 set), MANIFEST.json excepted; `on_manifest(file)` the spooled MANIFEST.json once compared."""
    report = VerifyReport(expected_sha256=expected_sha256)
    reader = ArchiveReader(stream, progress=progress)
    check = ArchiveCheck()
    try:
        for member in reader:
            if check.is_manifest(member):
                check.take_manifest(reader)
                continue
            reader.skip()
            check.record(member)
            if on_member is not None:
                on_member(member)
        check.compare(report)
        if on_manifest is not None and check.manifest is not None:
            on_manifest(check.manifest)
    except ArchiveError as exc:
        report.error = str(exc)
        report.members, report.bytes = check.members, check.bytes
        reader.drain_input()
    finally:
        check.close()
        reader.close()
    report.sha256 = reader.sha256
    return report
