"""Header building: plain ustar where it suffices, pax records where ustar cannot say it; read back by
Python's tarfile (which validates checksums) and GNU tar."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from backupd.archive import tarheader as th

MTIME = 1_700_000_000


def first_member(blob: bytes) -> tarfile.TarInfo:
    with tarfile.open(fileobj=io.BytesIO(blob + bytes(20 * th.BLOCK)), mode="r:") as archive:
        return archive.next()


def test_plain_member_is_one_ustar_block_that_tarfile_and_gnu_tar_accept():
    header = th.HeaderBuilder().header("src/etc/hosts", th.REGULAR, 0o100644, 0, 0, 5, MTIME, data=b"hello")
    assert len(header) == 2 * th.BLOCK and header[257:263] == b"ustar\x00"
    info = first_member(header)
    assert (info.name, info.size, info.mode, info.mtime, info.uname) == ("src/etc/hosts", 5, 0o644, MTIME,
                                                                         "root")
    listed = subprocess.run(["tar", "-tv"], input=header + bytes(1024), capture_output=True, check=True)
    assert b"src/etc/hosts" in listed.stdout and b" 5 " in listed.stdout


def test_size_of_8_gib_or_more_goes_into_a_pax_record():
    size = 9 * 1024 ** 3
    header = th.HeaderBuilder().header("huge.img", th.REGULAR, 0o100600, 0, 0, size, MTIME)
    assert header[156:157] == th.PAX and b" size=%d\n" % size in header
    info = first_member(header)
    assert info.name == "huge.img" and info.size == size


def test_size_just_below_8_gib_stays_ustar():
    header = th.HeaderBuilder().header("big.img", th.REGULAR, 0o100600, 0, 0, th.MAX_OCTAL_11, MTIME)
    assert len(header) == th.BLOCK and first_member(header).size == th.MAX_OCTAL_11


@pytest.mark.parametrize("name", ["a/" * 60 + "file", "répertoire/файл.txt", "x" * 99 + "é"])
def test_long_or_non_ascii_names_use_pax_path(name):
    header = th.HeaderBuilder().header(name, th.REGULAR, 0o100644, 0, 0, 0, MTIME)
    assert header[156:157] == th.PAX
    assert first_member(header).name == name


def test_name_that_is_not_utf8_keeps_its_raw_bytes(tmp_path):
    name = os.fsdecode(b"latin1-\xe9t\xe9.txt")
    header = th.HeaderBuilder().header(name, th.REGULAR, 0o100644, 0, 0, 0, MTIME)
    assert b"hdrcharset=BINARY" in header and b"path=latin1-\xe9t\xe9.txt" in header
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=header + bytes(1024), check=True)
    assert os.listdir(os.fsencode(tmp_path)) == [b"latin1-\xe9t\xe9.txt"]


def test_long_symlink_target_uses_pax_linkpath():
    target = "/very/long/" + "t" * 120
    header = th.HeaderBuilder().header("link", th.SYMLINK, 0o120777, 0, 0, 0, MTIME, target)
    info = first_member(header)
    assert info.issym() and info.linkname == target


def test_large_ids_and_out_of_range_mtime_use_pax():
    header = th.HeaderBuilder().header("f", th.REGULAR, 0o100644, 5_000_000, 6_000_000, 0, -86400)
    info = first_member(header)
    assert (info.uid, info.gid, info.mtime) == (5_000_000, 6_000_000, -86400)


def test_directory_and_cached_pieces_do_not_leak_between_members():
    builder = th.HeaderBuilder()
    blob = b"".join([builder.header("d/", th.DIRECTORY, 0o40755, 0, 0, 0, MTIME),
                     builder.header("d/a", th.REGULAR, 0o100600, 0, 0, 3, MTIME + 1, data=b"abc"),
                     builder.header("d/b", th.REGULAR, 0o100600, 0, 0, 3, MTIME + 2, data=b"xyz")])
    with tarfile.open(fileobj=io.BytesIO(blob + bytes(1024)), mode="r:") as archive:
        members = [(m.name, m.type, m.mode, m.mtime, archive.extractfile(m).read() if m.isfile() else None)
                   for m in archive]
    assert members == [("d", tarfile.DIRTYPE, 0o755, MTIME, None),
                       ("d/a", tarfile.REGTYPE, 0o600, MTIME + 1, b"abc"),
                       ("d/b", tarfile.REGTYPE, 0o600, MTIME + 2, b"xyz")]


def test_pax_record_lengths_count_themselves():
    for value_length in range(0, 120):
        body = th.pax_records([(b"path", b"v" * value_length)])
        length, _, _ = body.partition(b" ")
        assert int(length) == len(body)
