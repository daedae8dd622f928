"""POSIX tar headers built directly: ustar for the common case, a pax header only where ustar cannot say it.

Python's tarfile spends most of its time per member (owner look-ups, TarInfo objects, a members list);
this module builds the 512-byte header from cached pieces and a few bytes formats.
"""
from __future__ import annotations

import grp
import os
import pwd

BLOCK = 512
REGULAR = b"0"
SYMLINK = b"2"
DIRECTORY = b"5"
DUMPDIR = b"GNU.dumpdir"    # pax key of GNU incremental archives: the names a directory holds (tar -G -x
                            # removes the rest); other tars ignore it
PAX = b"x"

MAX_OCTAL_11 = 8 ** 11 - 1          # size and mtime fields: 11 octal digits (8 GiB - 1)
MAX_OCTAL_7 = 8 ** 7 - 1            # mode, uid, gid fields: 7 octal digits
SIZE_CACHE = 1 << 16                # sizes below this get their field cached (bounded: 64 Ki entries)
ZEROS = bytes(BLOCK)
_PAX_NAME = b"././@PaxHeader"
_CHKSUM_SPACES = 8 * ord(" ")


def padding(size: int) -> bytes:
    """The zero bytes that round `size` up to a whole tar block."""
    return ZEROS[:-size % BLOCK]


def _octal(value: int, width: int) -> bytes:
    """A NUL-terminated zero-padded octal field of `width` bytes."""
    return b"%0*o\x00" % (width - 1, value)


def _field(value: bytes, width: int) -> bytes:
    return value[:width].ljust(width, b"\x00")


def _name_cache(lookup):
    """A memoised id -> name function; ids with no name map to b''."""
    cache: dict[int, bytes] = {}

    def name(ident: int) -> bytes:
        try:
            return cache[ident]
        except KeyError:
            try:
                value = os.fsencode(lookup(ident)[0])
            except (KeyError, OverflowError):
                value = b""
            cache[ident] = value
            return value
    return name


def pax_records(records: list[tuple[bytes, bytes]]) -> bytes:
    """The body of a pax extended header: '<length> <key>=<value>\\n' records."""
    out = []
    for key, value in records:
        base = len(key) + len(value) + 3
        length = base + len(str(base))
        length = base + len(str(length))
        out.append(b"%d %s=%s\n" % (length, key, value))
    return b"".join(out)


class HeaderBuilder:
    """Builds member headers; caches owner names, the constant parts of headers per (type, mode, uid, gid),
    the size fields of small sizes and the last mtime field."""

    def __init__(self) -> None:
        self._user = _name_cache(pwd.getpwuid)
        self._group = _name_cache(grp.getgrgid)
        self._owners: dict[tuple, tuple[bytes, bytes, int, list]] = {}
        self._sizes: dict[int, tuple[bytes, int]] = {}
        self._mtime = (-1, b"", 0)

    def header(self, name: str, typeflag: bytes, mode: int, uid: int, gid: int, size: int,
               mtime: float, linkname: str = "", data: bytes = b"", pax: tuple = ()) -> bytes:
        """The header block(s) of one member (a pax header first when needed), then `data` padded to a
        whole block when given (small files: one join instead of three appends); `pax`: extra
        (key, value) records for its pax header."""
        middle, tail, fixed_sum, owner_pax = self._owners.get((typeflag, mode, uid, gid)) or \
            self._owner(typeflag, mode, uid, gid)
        mtime = int(mtime)
        if (not linkname and not owner_pax and not pax and name.isascii() and len(name) <= 100
                and size < SIZE_CACHE and 0 <= mtime <= MAX_OCTAL_11):
            name_b = name.encode()
            size_field, size_sum = self._sizes.get(size) or self._size_field(size)
            last_mtime, mtime_field, mtime_sum = self._mtime
            if mtime != last_mtime:
                mtime_field = b"%011o\x00" % mtime
                mtime_sum = sum(mtime_field)
                self._mtime = (mtime, mtime_field, mtime_sum)
            checksum = fixed_sum + sum(name_b) + size_sum + mtime_sum
            return b"".join((name_b.ljust(100, b"\x00"), middle, size_field, mtime_field,
                             b"%06o\x00 " % checksum, tail, data, ZEROS[:-len(data) % BLOCK]))
        return b"".join((self._with_pax(name, typeflag, middle, tail, fixed_sum, [*owner_pax, *pax], size,
                                        mtime, linkname), data, ZEROS[:-len(data) % BLOCK]))

    def regular_template(self, mode: int, uid: int, gid: int) -> tuple[bytes, bytes, int] | None:
        """(middle, tail, fixed_sum) of a regular file's ustar header for this owner, or None when the
        owner needs a pax header: the pieces a caller's own loop joins around name, size and mtime."""
        middle, tail, fixed_sum, owner_pax = self._owner(REGULAR, mode, uid, gid)
        return None if owner_pax else (middle, tail, fixed_sum)

    def size_field(self, size: int) -> tuple[bytes, int]:
        """The size field of a size that fits ustar and its byte sum, cached below SIZE_CACHE."""
        return self._sizes.get(size) or self._size_field(size)

    def _size_field(self, size: int) -> tuple[bytes, int]:
        field = b"%011o\x00" % size
        entry = (field, sum(field))
        if size < SIZE_CACHE:
            self._sizes[size] = entry
        return entry

    def _ustar(self, name: bytes, middle: bytes, tail: bytes, fixed_sum: int, size: int, mtime: int,
               linkname: bytes) -> bytes:
        """A ustar block for any size/mtime that fits; `tail` starts after the link name field."""
        size_field = b"%011o\x00" % size
        mtime_field = b"%011o\x00" % mtime
        checksum = fixed_sum + sum(name) + sum(size_field) + sum(mtime_field) + sum(linkname)
        return b"".join((name.ljust(100, b"\x00"), middle, size_field, mtime_field,
                         b"%06o\x00 " % checksum, tail[:1], linkname.ljust(100, b"\x00"), tail[101:]))

    def _with_pax(self, name: str, typeflag: bytes, middle: bytes, tail: bytes, fixed_sum: int,
                  owner_pax: list, size: int, mtime: int, linkname: str) -> bytes:
        records = list(owner_pax)
        name_b, linkname_b = os.fsencode(name), os.fsencode(linkname)
        binary = _not_utf8(name) or _not_utf8(linkname)
        if binary:
            records.insert(0, (b"hdrcharset", b"BINARY"))
        if not name.isascii() or len(name_b) > 100:
            records.append((b"path", name_b))
        if not linkname.isascii() or len(linkname_b) > 100:
            records.append((b"linkpath", linkname_b))
        if size > MAX_OCTAL_11:
            records.append((b"size", b"%d" % size))
        if not 0 <= mtime <= MAX_OCTAL_11:
            records.append((b"mtime", b"%d" % mtime))
        ustar = self._ustar(_field(name_b, 100).rstrip(b"\x00"), middle, tail, fixed_sum,
                            size if size <= MAX_OCTAL_11 else 0, min(max(mtime, 0), MAX_OCTAL_11),
                            _field(linkname_b, 100).rstrip(b"\x00"))
        if not records:
            return ustar
        body = pax_records(records)
        pax_middle, pax_tail, pax_sum, _ = self._owner(PAX, 0o644, 0, 0)
        pax = self._ustar(_PAX_NAME, pax_middle, pax_tail, pax_sum, len(body), 0, b"")
        return b"".join((pax, body, padding(len(body)), ustar))

    def _owner(self, typeflag: bytes, mode: int, uid: int, gid: int) -> tuple[bytes, bytes, int, list]:
        key = (typeflag, mode, uid, gid)
        cached = self._owners.get(key)
        if cached is None:
            cached = self._owners[key] = self._build_owner(typeflag, mode & 0o7777, uid, gid)
        return cached

    def _build_owner(self, typeflag: bytes, mode: int, uid: int, gid: int) -> tuple[bytes, bytes, int, list]:
        """Mode/uid/gid fields, the tail from the type flag on (empty link name), their byte sum
        (with the checksum field as spaces) and any pax records the owner needs."""
        pax: list[tuple[bytes, bytes]] = []
        user, group = self._user(uid), self._group(gid)
        for key, ident in ((b"uid", uid), (b"gid", gid)):
            if ident > MAX_OCTAL_7:
                pax.append((key, b"%d" % ident))
        for key, value in ((b"uname", user), (b"gname", group)):
            if len(value) > 32 or not value.isascii():
                pax.append((key, value))
        middle = (_octal(mode, 8) + _octal(min(uid, MAX_OCTAL_7), 8)
                  + _octal(min(gid, MAX_OCTAL_7), 8))
        tail = (typeflag + bytes(100) + b"ustar\x0000" + _field(user, 32) + _field(group, 32)
                + _octal(0, 8) + _octal(0, 8) + bytes(155 + 12))
        return middle, tail, sum(middle) + sum(tail) + _CHKSUM_SPACES, pax


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


END_OF_ARCHIVE = bytes(2 * BLOCK)
