"""The batched file path (per-owner header templates) and the output writer thread's disk writeback."""
from __future__ import annotations

import os
import subprocess

from backupd.archive import tarheader as th
from backupd.archive.stream import _writeback_starter
from backupd.sources.directory import DirectorySource

from tests.archive.helpers import source_config, write_archive

# (name, mode, uid, gid, mtime): owners and mtimes the template covers, and ones that need pax
FILES = [
    ("plain.txt", 0o644, 0, 0, 1_700_000_000),
    ("exec.sh", 0o755, 0, 0, 1_700_000_000),
    ("other-owner", 0o600, 1234, 5678, 1_600_000_000),
    ("huge-uid", 0o644, 3_000_000, 0, 1_700_000_000),
    ("before-1970", 0o644, 0, 0, -86_400),
    ("a" * 100, 0o640, 0, 0, 1_700_000_001),
]
if os.geteuid() != 0:   # only root may give files other owners: the same members, owned by whoever runs the test
    FILES = [(name, mode, os.getuid(), os.getgid(), mtime) for name, mode, _, _, mtime in FILES]


def test_batched_headers_match_the_general_header_builder(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for index, (name, mode, uid, gid, mtime) in enumerate(FILES):
        path = tree / name
        path.write_bytes(b"x" * (index * 300))
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        os.utime(path, (mtime, mtime))
    archive = tmp_path / "a.tar.zst"
    write_archive(archive, [DirectorySource(source_config("s", "directory", path=tree))], tmp_path / "w")
    tar = subprocess.run(["zstd", "-dc", str(archive)], capture_output=True, check=True).stdout
    builder = th.HeaderBuilder()
    for index, (name, mode, uid, gid, mtime) in enumerate(FILES):
        size = index * 300
        expected = builder.header("s/" + name, th.REGULAR, mode, uid, gid, size, mtime, data=b"x" * size)
        assert expected in tar, f"member {name} differs from HeaderBuilder.header()"


def test_writeback_starter_runs_on_a_real_file_and_is_a_no_op_without_one(tmp_path):
    with open(tmp_path / "f", "wb", buffering=0) as file:
        file.write(b"y" * 8192)
        assert _writeback_starter(file)(0, 8192) == 0
    assert _writeback_starter(object())(0, 8192) is None
