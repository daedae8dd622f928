"""Round trips through the real ArchiveWriter and the restore: byte-identical trees, selection, the restore
folder's rules, and archives that do not verify (nothing restored)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backupd.restore import RestoreError, extract_archive, verify_archive
from backupd.sources.directory import DirectorySource
from tests.archive.helpers import extract, source_config, tree_state, write_archive

LONG_NAME = "long-" + "x" * 120 + ".txt"
LONG_TARGET = "../" + "nested-" + "y" * 110


def make_tree(root: Path) -> None:
    """Files of several sizes (one over the reader's 1 MiB chunk), an empty file, nested and read-only
    folders, symlinks (relative, long target, dangling inside), modes, mtimes, non-ASCII and long names."""
    files = {"a.txt": b"alpha\n", "empty": b"", "sub/deeper/big.bin": os.urandom(3 << 20) + b"end",
             "sub/mid.bin": os.urandom(200_000), "caf\u00e9/\u65e5\u672c\u8a9e.txt": "\u00e9t\u00e9\n".encode(),
             f"sub/{LONG_NAME}": b"long name\n", "private/secret": b"s3cret\n", "ro/inside.txt": b"ro\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    os.symlink("a.txt", root / "link-a")
    os.symlink("../a.txt", root / "sub/up-link")
    os.symlink(LONG_TARGET, root / "sub/deeper/long-link")
    os.symlink("missing-but-inside", root / "dangling")
    os.chmod(root / "private/secret", 0o600)
    os.chmod(root / "private", 0o750)
    os.chmod(root / "sub/mid.bin", 0o640)
    stamp = 1_650_000_000
    for index, (folder, names, filenames) in enumerate(sorted(os.walk(root), reverse=True)):
        for name in names + filenames:
            os.utime(Path(folder, name), (stamp + index, stamp + index), follow_symlinks=False)
        os.utime(folder, (stamp - index, stamp - index))
    os.chmod(root / "ro", 0o555)


def backup(tmp_path: Path, *sources: tuple[str, Path]) -> tuple[Path, object]:
    archive = tmp_path / "backup.tar.zst"
    dirs = [DirectorySource(source_config(name, "directory", path=path)) for name, path in sources]
    return archive, write_archive(archive, dirs, tmp_path / "work")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    make_tree(root)
    yield root
    os.chmod(root / "ro", 0o755)


def root_state(path: Path) -> tuple:
    st = path.lstat()
    return stat.S_IMODE(st.st_mode), int(st.st_mtime)


def test_round_trip_is_byte_identical_and_matches_tar(tmp_path, tree):
    archive, stats = backup(tmp_path, ("data", tree))
    summary = extract_archive(open(archive, "rb"), tmp_path / "restored", expected_sha256=stats.sha256)
    restored = tmp_path / "restored" / "data"
    assert tree_state(restored) == tree_state(tree)
    assert root_state(restored) == root_state(tree)
    assert os.lstat(restored / "link-a").st_mtime == os.lstat(tree / "link-a").st_mtime
    assert os.listdir(tmp_path / "restored") == ["data"], "MANIFEST.json and the staging folder are not left"
    assert (summary.files, summary.symlinks, summary.bytes) == (8, 4, stats.bytes_in)
    assert summary.archive_sha256 == stats.sha256 and not summary.refused and not summary.warnings
    by_tar = extract(archive, tmp_path / "by-tar") / "data"
    assert tree_state(restored) == tree_state(by_tar)
    for path in (restored, by_tar):
        os.chmod(path / "ro", 0o755)


def test_owners_are_kept_only_as_root(tmp_path, tree):
    if os.geteuid() == 0:
        os.chown(tree / "a.txt", 1234, 5678)
        os.chown(tree / "link-a", 4321, 8765, follow_symlinks=False)
    archive, _ = backup(tmp_path, ("data", tree))
    extract_archive(open(archive, "rb"), tmp_path / "kept")
    extract_archive(open(archive, "rb"), tmp_path / "not-kept", keep_owners=False)
    kept, not_kept = tmp_path / "kept/data", tmp_path / "not-kept/data"
    me = (os.geteuid(), os.getegid())
    owner = lambda path: (path.lstat().st_uid, path.lstat().st_gid)
    if os.geteuid() == 0:
        assert owner(kept / "a.txt") == (1234, 5678) and owner(kept / "link-a") == (4321, 8765)
    else:
        assert owner(kept / "a.txt") == me
    assert owner(not_kept / "a.txt") == me and owner(not_kept / "link-a") == me
    for path in (kept, not_kept):
        os.chmod(path / "ro", 0o755)


def test_source_and_path_selection(tmp_path, tree):
    www = tmp_path / "www"
    (www / "html").mkdir(parents=True)
    (www / "html/index.html").write_text("<p>hi</p>\n")
    archive, _ = backup(tmp_path, ("data", tree), ("www", www))
    summary = extract_archive(open(archive, "rb"), tmp_path / "only-www", sources=["www"])
    assert sorted(os.listdir(tmp_path / "only-www")) == ["www"] and summary.skipped > 0
    assert tree_state(tmp_path / "only-www/www") == tree_state(www)
    extract_archive(open(archive, "rb"), tmp_path / "glob", paths=["data/sub/*.bin", "www/html"])
    got = tree_state(tmp_path / "glob")
    assert sorted(got) == ["data", "data/sub", "data/sub/deeper", "data/sub/deeper/big.bin", "data/sub/mid.bin",
                           "www", "www/html", "www/html/index.html"]
    assert got["data/sub/mid.bin"] == tree_state(tree)["sub/mid.bin"]
    with pytest.raises(RestoreError, match="no member matches"):
        extract_archive(open(archive, "rb"), tmp_path / "none", sources=["nope"])
    assert not (tmp_path / "none").exists()


def test_non_empty_folder_is_refused_unless_forced(tmp_path, tree):
    archive, _ = backup(tmp_path, ("data", tree))
    target = tmp_path / "target"
    (target / "data/sub").mkdir(parents=True)
    (target / "data/a.txt").write_text("old\n")
    (target / "data/sub/keep.txt").write_text("kept\n")
    (target / "other").write_text("unrelated\n")
    with pytest.raises(RestoreError, match="is not empty"):
        extract_archive(open(archive, "rb"), target)
    assert (target / "data/a.txt").read_text() == "old\n"
    extract_archive(open(archive, "rb"), target, force=True)
    assert (target / "data/a.txt").read_text() == "alpha\n"
    assert (target / "data/sub/keep.txt").read_text() == "kept\n" and (target / "other").exists()
    restored = tree_state(target / "data")
    del restored["sub/keep.txt"]
    assert restored == tree_state(tree)
    os.chmod(target / "data/ro", 0o755)


def flipped(archive: Path, offset: int) -> Path:
    data = bytearray(archive.read_bytes())
    data[offset] ^= 0x01
    bad = archive.with_name("flipped.tar.zst")
    bad.write_bytes(data)
    return bad


def test_one_flipped_byte_is_reported_and_nothing_is_restored(tmp_path, tree):
    archive, stats = backup(tmp_path, ("data", tree))
    assert verify_archive(open(archive, "rb"), stats.sha256).ok
    bad = flipped(archive, archive.stat().st_size // 2)         # inside big.bin's stored data
    report = verify_archive(open(bad, "rb"), stats.sha256)
    assert not report.ok and not report.sha256_ok
    assert report.problems()[0] == f"archive sha256 is {report.sha256}, the record says {stats.sha256}"
    assert report.differ == ["data/sub/deeper/big.bin: sha256 differs from the manifest"]
    assert not report.missing and not report.extra
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(RestoreError, match="archive does not verify: archive sha256 is .*; nothing restored"):
        extract_archive(open(bad, "rb"), target, expected_sha256=stats.sha256)
    assert os.listdir(target) == []
    with pytest.raises(RestoreError, match="differs: data/sub/deeper/big.bin: sha256 differs"):
        extract_archive(open(bad, "rb"), tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_truncated_archive_is_reported_and_nothing_is_restored(tmp_path, tree):
    archive, stats = backup(tmp_path, ("data", tree))
    data = archive.read_bytes()
    for cut in (1, len(data) // 3):
        report = verify_archive([data[:-cut]])
        assert not report.ok and "truncated" in report.error
        with pytest.raises(RestoreError, match="truncated"):
            extract_archive([data[:-cut]], tmp_path / "target")
        assert not (tmp_path / "target").exists()


def test_verify_lists_members_that_differ_are_missing_or_extra(tmp_path):
    from tests.restore.crafted import craft, file, manifest_entry

    members = [file("s/a", b"a"), file("s/b", b"b"), file("s/c", b"c")]
    manifest = [manifest_entry(*members[0]), {**manifest_entry(*members[1]), "size": 5},
                {"name": "s/gone", "type": "file", "size": 1, "sha256": "00" * 32}]
    report = verify_archive(open(craft(tmp_path / "a.tar.zst", members, manifest), "rb"))
    assert report.differ == ["s/b: 1 bytes in the archive, 5 in the manifest"]
    assert report.missing == ["s/gone"] and report.extra == ["s/c"]
    with pytest.raises(RestoreError):
        extract_archive(open(tmp_path / "a.tar.zst", "rb"), tmp_path / "target")
    assert not (tmp_path / "target").exists()
