"""The archive writer end to end: real files in, real `zstd -dc | tar -x` out, compared byte for byte."""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from backupd.archive.writer import SMALL_FILE, ArchiveWriter
from backupd.cancel import CancelToken, Cancelled
from backupd.sources.directory import DirectorySource
from tests.archive.helpers import (HEADER, extract, listing, read_manifest, sha256_file, source_config,
                                   tree_state, write_archive)

LONG_DIR = "d" * 120
LONG_FILE = "f" * 110 + ".txt"


def build_tree(root: Path) -> None:
    """Every member kind the writer must carry: sizes around block and read boundaries, long and
    non-ASCII names, empty files and directories, symbolic links (relative, absolute, dangling, long)."""
    rng = random.Random(5)
    (root / "empty-dir").mkdir(parents=True)
    (root / "sub" / "deeper").mkdir(parents=True)
    for size in (0, 1, 511, 512, 513, 100_000, SMALL_FILE, SMALL_FILE + 1, 5 * 1024 * 1024 + 7):
        (root / "sub" / f"size-{size}.bin").write_bytes(rng.randbytes(size))
    (root / LONG_DIR / "x" / LONG_DIR).mkdir(parents=True)
    (root / LONG_DIR / "x" / LONG_DIR / LONG_FILE).write_text("long path\n")
    (root / "naïve café ☕.txt").write_text("unicode name\n")
    (root / 'quote" back\\slash\ttab.txt').write_text("escaped in JSON\n")
    (root / "sub" / "deeper" / "exec.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "sub" / "deeper" / "exec.sh", 0o750)
    os.chmod(root / "sub" / "size-1.bin", 0o600)
    os.symlink("sub/size-1.bin", root / "relative-link")
    os.symlink("/etc/hostname", root / "absolute-link")
    os.symlink("does-not-exist", root / "dangling-link")
    os.symlink("t" * 150, root / "long-target-link")
    os.symlink("sub", root / "dir-link")
    os.utime(root / "sub" / "size-0.bin", (1_000_000_000, 1_000_000_000))
    for dirpath, _, _ in os.walk(root):     # old directory times: restoring "now" instead would show
        os.utime(dirpath, (1_600_000_000, 1_600_000_000))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    build_tree(root)
    return root


def archive_tree(tmp_path: Path, root: Path, **kwargs):
    archive = tmp_path / "out.tar.zst.tmp"
    source = DirectorySource(source_config("files", "directory", path=root))
    return archive, write_archive(archive, [source], tmp_path / "work", **kwargs)


def test_round_trip_through_real_cli_is_byte_identical(tmp_path, tree):
    archive, stats = archive_tree(tmp_path, tree)
    restored = extract(archive, tmp_path / "restored")
    assert tree_state(restored / "files") == tree_state(tree)
    assert (restored / "files" / "dir-link").is_symlink()
    assert stats.size == archive.stat().st_size and stats.sha256 == sha256_file(archive)
    assert stats.bytes_in == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file()
                                 and not p.is_symlink())


def test_manifest_lists_every_member_with_matching_sha256(tmp_path, tree):
    archive, stats = archive_tree(tmp_path, tree)
    restored = extract(archive, tmp_path / "restored")
    manifest = read_manifest(restored)
    assert {k: manifest[k] for k in HEADER} == HEADER and manifest["backupd_version"]
    members = manifest["members"]
    assert len(members) == stats.members == manifest["member_count"]
    assert listing(archive)[-1] == "MANIFEST.json"
    tar_names = {name.rstrip("/") for name in listing(archive)} - {"MANIFEST.json"}
    assert {m["name"] for m in members} == tar_names
    files = [m for m in members if m["type"] == "file"]
    assert len(files) == 13
    for member in files:
        path = restored / member["name"]
        assert member["size"] == path.stat().st_size
        assert member["sha256"] == sha256_file(path), member["name"]
    links = {m["name"]: m["target"] for m in members if m["type"] == "symlink"}
    assert links["files/long-target-link"] == "t" * 150
    assert manifest["warnings"] == [] and stats.warnings == []


def test_warnings_land_in_manifest_stats_and_callback(tmp_path):
    seen = []
    archive = tmp_path / "a.tar.zst.tmp"
    with ArchiveWriter(archive, header=HEADER, on_warning=lambda m, msg: seen.append((m, msg))) as writer:
        sink = writer.source("src")
        sink.warn("some/file", "something odd")
        st = os.stat(tmp_path)
        sink.add_file("gone.txt", str(tmp_path / "gone.txt"), st)
        stats = writer.finish()
    manifest = read_manifest(extract(archive, tmp_path / "x"))
    assert manifest["warnings"][0] == {"member": "src/some/file", "message": "something odd"}
    assert manifest["warnings"][1]["member"] == "src/gone.txt"
    assert "vanished" in manifest["warnings"][1]["message"]
    assert stats.warnings == manifest["warnings"] and [m for m, _ in seen] == ["src/some/file", "src/gone.txt"]
    assert stats.warning_count == manifest["warning_count"] == 2
    assert manifest["members"] == []


@pytest.mark.parametrize("actual, claimed", [(100, 300), (300, 100), (3 * SMALL_FILE, 2 * SMALL_FILE),
                                             (2 * SMALL_FILE, 3 * SMALL_FILE)],
                         ids=["small-shrank", "small-grew", "large-grew", "large-shrank"])
@pytest.mark.parametrize("batched", [False, True], ids=["add_file", "add_files"])
def test_file_changing_size_keeps_the_tar_valid(tmp_path, actual, claimed, batched):
    """The header's size is what gets written (padded or truncated), with a warning, and the next
    member still restores correctly."""
    changing = tmp_path / "changing.bin"
    changing.write_bytes(b"a" * actual)
    st = changing.stat()
    claimed_st = with_size(st, claimed)
    archive = tmp_path / "a.tar.zst.tmp"
    with ArchiveWriter(archive, header=HEADER) as writer:
        sink = writer.source("s")
        if batched:
            sink.add_files([("changing.bin", str(changing), claimed_st)])
        else:
            sink.add_file("changing.bin", str(changing), claimed_st)
        sink.add_stream("after.txt", io.BytesIO(b"still here\n"), 11)
        stats = writer.finish()
    restored = extract(archive, tmp_path / "x")
    data = (restored / "s" / "changing.bin").read_bytes()
    assert data == (b"a" * actual + bytes(claimed))[:claimed]
    assert (restored / "s" / "after.txt").read_bytes() == b"still here\n"
    word = "grew" if actual > claimed else "shrank"
    assert [w["member"] for w in stats.warnings] == ["s/changing.bin"]
    assert word in stats.warnings[0]["message"]
    assert read_manifest(restored)["members"][0]["sha256"] == sha256_file(restored / "s" / "changing.bin")


def with_size(st: os.stat_result, size: int) -> os.stat_result:
    """`st` as if the file had been `size` bytes when it was scanned."""
    extra = {k: getattr(st, k) for k in ("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns",
                                         "st_ctime_ns")}
    return os.stat_result(tuple(st)[:6] + (size,) + tuple(st)[7:], extra)


class CancellingStream(io.RawIOBase):
    """A stream that cancels the run's token after handing out its first chunk."""

    def __init__(self, token: CancelToken) -> None:
        self.token = token

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        self.token.cancel("test asked to stop")
        view[:] = bytes(len(view))
        return len(view)


def test_cancel_mid_write_removes_temporary_files(tmp_path, tree):
    token = CancelToken()
    archive = tmp_path / "a.tar.zst.tmp"
    with pytest.raises(Cancelled, match="test asked to stop"):
        with ArchiveWriter(archive, header=HEADER, cancel=token) as writer:
            DirectorySource(source_config("files", "directory", path=tree)).write(writer.source("files"),
                                                                                  tmp_path)
            assert archive.exists() and writer.bytes_in > 0
            writer.source("big").add_stream("big.bin", CancellingStream(token), 64 * SMALL_FILE)
            writer.finish()
    assert sorted(os.listdir(tmp_path)) == ["tree"]


def test_error_inside_with_block_removes_file(tmp_path):
    archive = tmp_path / "a.tar.zst.tmp"
    with pytest.raises(RuntimeError):
        with ArchiveWriter(archive, header=HEADER) as writer:
            writer.source("s").add_stream("x", io.BytesIO(b"x"), 1)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_progress_counters_and_compression(tmp_path):
    archive = tmp_path / "a.tar.zst.tmp"
    payload = b"compressible line\n" * 200_000
    with ArchiveWriter(archive, header=HEADER, level=19) as writer:
        writer.source("s").add_stream("text", io.BytesIO(payload), len(payload))
        assert writer.bytes_in == len(payload)
        stats = writer.finish()
    assert writer.bytes_out == stats.size < len(payload) // 50
    assert (extract(archive, tmp_path / "x") / "s" / "text").read_bytes() == payload


def test_large_file_modified_while_read_is_a_warning(tmp_path):
    """Same size, newer mtime than at scan time: archived, with a 'changed while being read' warning."""
    path = tmp_path / "db.bin"
    path.write_bytes(b"z" * (2 * SMALL_FILE))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    archive = tmp_path / "a.tar.zst.tmp"
    with ArchiveWriter(archive, header=HEADER) as writer:
        writer.source("s").add_file("db.bin", str(path), st)
        stats = writer.finish()
    assert [w["member"] for w in stats.warnings] == ["s/db.bin"]
    assert "changed while being read" in stats.warnings[0]["message"]
    assert (extract(archive, tmp_path / "x") / "s" / "db.bin").read_bytes() == path.read_bytes()
