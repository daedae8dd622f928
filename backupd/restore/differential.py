"""A differential archive: what its MANIFEST.json says it holds, and the deltas it carries.

A differential's manifest describes the complete tree at its run. An entry with "in": "full" keeps the
full's bytes; one with "delta" is the full's copy with its extents written over it (each a member under
.backupd-delta/, named PATH@OFFSET); any other entry's bytes are in the differential itself. So
the members it holds are the entries without "in"/"delta", plus one member per extent."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from ..util.names import DELTA_DIR, FULL
from .check import MANIFEST_NAME, Record, VerifyReport, _differences, compare_records, record_of
from .reader import ArchiveError

DELTA_PREFIX = DELTA_DIR + "/"


@dataclass(frozen=True)
class Extent:
    member: str             # the member holding the bytes
    offset: int             # where they go in the file
    size: int
    sha256: str


@dataclass(frozen=True)
class Delta:
    """A file the differential makes by writing its extents over the full's copy."""

    name: str               # the file, as the manifest names it
    extents: tuple          # Extent, ...
    size: int               # of the file made
    sha256: str
    stat: tuple | None      # [mode, uid, gid, mtime_ns, ctime_ns] of the file made, when the manifest has it


def is_delta_member(name: str) -> bool:
    return name.removeprefix("./").startswith(DELTA_PREFIX)


def compare_held(logged: Iterable[Record], members: Iterable[dict], report: VerifyReport,
                 deltas: list[Delta] | None = None) -> None:
    """Fill `report` with what differs between the members a differential holds and the entries that say
    they are held (in step, as compare_records); the delta members apart, by name (they are few). Each
    delta entry is appended to `deltas` when given."""
    from_archive: dict[str, Record] = {}
    wanted: dict[str, Record] = {}

    def archive() -> Iterator[Record]:
        for record in logged:
            if is_delta_member(record[0]):
                from_archive[record[0].removeprefix("./")] = record
            else:
                yield record

    def manifest() -> Iterator[Record]:
        for entry in members:
            record = record_of(entry)
            held = entry.get("in")
            if held is not None:
                if held != FULL:
                    raise ArchiveError(f"{MANIFEST_NAME}: {record[0]!r} is said to be in {held!r}, not the full")
                continue
            delta = entry.get("delta")
            if delta is None:
                yield record
                continue
            found = delta_of(record, delta, entry.get("stat"))
            for extent in found.extents:
                wanted[extent.member] = (extent.member, "file", extent.size, extent.sha256, "")
            if deltas is not None:
                deltas.append(found)

    compare_records(archive(), manifest(), report)
    for name, record in from_archive.items():
        other = wanted.pop(name, None)
        if other is None:
            report.extra.append(record[0])
        else:
            _differences(record, other, report)
    report.missing.extend(wanted)


def delta_of(record: Record, delta, stat) -> Delta:
    """The Delta of a manifest entry's "delta" field; ArchiveError if it is malformed."""
    name = record[0]
    extents = delta.get("extents") if isinstance(delta, dict) else None
    if not isinstance(extents, list) or not all(_good_extent(extent) for extent in extents):
        raise ArchiveError(f"{MANIFEST_NAME}: {name!r} has a malformed delta entry")
    if record[1] != "file":
        raise ArchiveError(f"{MANIFEST_NAME}: {name!r} has a delta but is not a file")
    good_stat = isinstance(stat, list) and len(stat) >= 4 and all(type(value) is int for value in stat[:4])
    return Delta(name, tuple(Extent(e["member"].removeprefix("./"), e["offset"], e["size"], e["sha256"])
                             for e in extents), record[2], record[3], tuple(stat[:4]) if good_stat else None)


def _good_extent(extent) -> bool:
    return (isinstance(extent, dict) and isinstance(extent.get("member"), str) and is_delta_member(extent["member"])
            and type(extent.get("offset")) is int and extent["offset"] >= 0 and type(extent.get("size")) is int
            and isinstance(extent.get("sha256"), str))


def base_of(header: dict) -> dict:
    """A differential manifest's "base" (archive, run_id, sha256, size); ArchiveError if it has none."""
    base = header.get("base")
    if not (isinstance(base, dict) and isinstance(base.get("archive"), str) and isinstance(base.get("sha256"), str)):
        raise ArchiveError(f"{MANIFEST_NAME} of a differential does not name its full (base)")
    return base
