"""Tar header blocks parsed by hand: ustar, pax extended and global headers, GNU long names and base-256
numbers. Only parsing: what a member may do is decided by the extractor."""
from __future__ import annotations

from dataclasses import dataclass

BLOCK = 512
_CHKSUM = slice(148, 156)
_CHKSUM_SPACES = 8 * ord(" ")
_ZERO_BLOCK = bytes(BLOCK)
# type flag -> member type; these carry no data blocks whatever their size field says (as tar reads them)
_NO_DATA = {b"1": "hardlink", b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}
_WITH_DATA = {b"0": "file", b"\x00": "file", b"7": "file", b"D": "dumpdir"}
DUMPDIR_KEY = "GNU.dumpdir"     # pax record of GNU incremental archives: a folder's entries (a dumpdir)
EXTENDED = {b"x": "pax", b"g": "pax-global", b"L": "gnu-longname", b"K": "gnu-longlink"}


class ArchiveError(Exception):
    """The archive cannot be read (corrupt, truncated, not a tar.zst); the message is one line."""


@dataclass(slots=True)
class Member:
    name: str                   # as stored (pax path, GNU long name or ustar prefix/name), not normalised
    type: str                   # file, dir, symlink, hardlink, char, block, fifo, or other:<flag>
    mode: int                   # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    mtime_ns: int
    size: int                   # bytes of data that follow the header (0 for links, dirs, devices)
    linkname: str = ""
    sha256: str | None = None   # hex digest of the data, set once it has been read to the end
    dumpdir: bytes | None = None    # a dumpdir's entries when a pax record held them (else its data does)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


def text(raw: bytes) -> str:
    """Names are bytes in tar; UTF-8 where they can be, the rest kept as surrogates (as os.fsdecode)."""
    return raw.decode("utf-8", "surrogateescape")


def number(field: bytes, what: str) -> int:
    """An octal field (NUL/space padded) or a GNU base-256 one (high bit set)."""
    try:
        return int(field.rstrip(b"\x00"), 8)      # the usual field: digits, maybe spaces, then NULs
    except ValueError:
        pass
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else value
    digits = field.split(b"\x00", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise ArchiveError(f"bad {what} field {digits[:20]!r} in a tar header") from None


def is_zero(block: bytes) -> bool:
    return block == _ZERO_BLOCK


def parse_block(block: bytes, offset: int) -> tuple[bytes, dict]:
    """(type flag, fields) of one header block; raises ArchiveError on a bad checksum or number."""
    stored = number(block[_CHKSUM], "checksum")
    unsigned = sum(block) - sum(block[_CHKSUM]) + _CHKSUM_SPACES
    if stored != unsigned and stored != _signed_sum(block):
        raise ArchiveError(f"bad tar header checksum at offset {offset} (corrupt or not a tar archive)")
    name = block[0:100].split(b"\x00", 1)[0]
    if block[257:263] == b"ustar\x00" and block[345] != 0:
        name = block[345:500].split(b"\x00", 1)[0] + b"/" + name
    return block[156:157], {
        "path": name,
        "mode": number(block[100:108], "mode"),
        "uid": number(block[108:116], "uid"),
        "gid": number(block[116:124], "gid"),
        "size": number(block[124:136], "size"),
        "mtime_ns": number(block[136:148], "mtime") * 1_000_000_000,
        "linkpath": block[157:257].split(b"\x00", 1)[0],
    }


def _signed_sum(block: bytes) -> int:
    """The checksum as some old tars computed it, with signed chars."""
    total = sum(b - 256 if b > 127 else b for b in block)
    return total - sum(b - 256 if b > 127 else b for b in block[_CHKSUM]) + _CHKSUM_SPACES


def pax_records(body: bytes) -> dict[str, bytes]:
    """'<length> <key>=<value>\\n' records -> {key: value}; raises ArchiveError if malformed."""
    records: dict[str, bytes] = {}
    pos, end = 0, len(body)
    while pos < end and body[pos] != 0:
        space = body.find(b" ", pos, pos + 20)
        try:
            length = int(body[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = body[space + 1:pos + length]
        if length <= 0 or pos + length > end or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveError(f"malformed pax extended header record at byte {pos}")
        key, _, value = record[:-1].partition(b"=")
        records[text(key)] = value
        pos += length
    return records


def _pax_time(value: bytes) -> int:
    """A pax time ('1700000000.123456789', maybe negative) in nanoseconds."""
    whole, _, fraction = value.decode("ascii", "replace").partition(".")
    try:
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * 1_000_000_000 + sign * int((fraction + "000000000")[:9] or 0)
    except ValueError:
        raise ArchiveError(f"bad pax mtime {value[:30]!r}") from None


def _pax_int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        raise ArchiveError(f"bad pax number {value[:30]!r}") from None


# pax key -> (field, converter)
_PAX_FIELDS = {
    "path": ("path", bytes), "linkpath": ("linkpath", bytes), "size": ("size", _pax_int),
    "uid": ("uid", _pax_int), "gid": ("gid", _pax_int), "mtime": ("mtime_ns", _pax_time),
}


def apply_extended(fields: dict, extended: dict[str, bytes]) -> bool:
    """Overlay pax records (and GNU long names) on a header's fields; True if they mark a sparse file."""
    sparse = False
    for key, value in extended.items():
        entry = _PAX_FIELDS.get(key)
        if entry is not None:
            fields[entry[0]] = entry[1](value)
        elif key.startswith("GNU.sparse."):
            sparse = True
    return sparse


def member_of(flag: bytes, fields: dict, sparse: bool, dumpdir: bytes | None = None) -> Member:
    """The Member a (fully extended) header describes; `dumpdir`: a GNU.dumpdir pax record's value (a
    folder member, typeflag 5 or D, is then a dumpdir whose entries it holds)."""
    kind = _NO_DATA.get(flag) or _WITH_DATA.get(flag) or f"other:{text(flag) or 'NUL'}"
    name = text(fields["path"])
    if flag == b"\x00" and name.endswith("/"):
        kind = "dir"                    # a pre-POSIX directory
    if sparse:
        kind = "other:sparse"
    size = 0 if flag in _NO_DATA or kind == "dir" else fields["size"]
    if size < 0:
        raise ArchiveError(f"negative size in the tar header of {name!r}")
    if dumpdir is not None and kind in ("dir", "dumpdir"):
        kind = "dumpdir"
    else:
        dumpdir = None
    return Member(name=name, type=kind, mode=fields["mode"] & 0o7777, uid=fields["uid"], gid=fields["gid"],
                  mtime_ns=fields["mtime_ns"], size=size, linkname=text(fields["linkpath"]), dumpdir=dumpdir)
