"""GNU dumpdir members: our extractor against the real `tar -G -x` on the same archives, made by GNU tar's
own --listed-incremental and by hand (GNU magic with a D member, and the pax GNU.dumpdir record)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from backupd.archive.tarheader import END_OF_ARCHIVE, HeaderBuilder, pax_records
from backupd.restore import ArchiveReader, RestoreSummary
from backupd.restore.dumpdir import parse
from backupd.restore.extract import Extractor
from backupd.restore.rules import Refused, Selection
from backupd.restore.staging import DirChain, Target
from tests.archive.helpers import tree_state
from tests.restore.sets import settle as settle_at, write

pytestmark = pytest.mark.skipif(shutil.which("tar") is None or shutil.which("zstd") is None,
                                reason="needs GNU tar and zstd")
MTIME = 1_700_000_000


def ours(archives: list[Path], target: Path) -> RestoreSummary:
    """Our extractor on the archives in turn (no manifest to check: GNU tar writes none)."""
    staged = Target(target, force=True)
    chain = DirChain(staged.staging_fd, keep_owners=False, remember=True)
    summary = RestoreSummary()
    try:
        for archive in archives:
            with open(archive, "rb") as stream:
                reader = ArchiveReader(stream)
                extractor = Extractor(reader, chain, Selection(), summary)
                try:
                    for member in reader:
                        extractor.member(member)
                finally:
                    chain.leave()
                    reader.close()
        staged.commit(chain.deferred, False)
    except BaseException:
        staged.close()
        raise
    return summary


def gnu(archives: list[Path], target: Path) -> None:
    target.mkdir()
    for archive in archives:
        subprocess.run(["tar", "--zstd", "-G", "-x", "-f", str(archive), "-C", str(target)], check=True)


def incremental(root: Path, snapshot: Path, archive: Path) -> Path:
    subprocess.run(["tar", "--zstd", f"--listed-incremental={snapshot}", "-c", "-f", str(archive), "-C",
                    str(root.parent), root.name], check=True)
    return archive


def kinds(archive: Path) -> set[str]:
    with open(archive, "rb") as stream, ArchiveReader(stream) as reader:
        return {member.type for member in reader}


def settle(root: Path) -> None:
    settle_at(root, MTIME)


def same_as_gnu(archives: list[Path], tmp_path: Path) -> dict:
    gnu(archives, tmp_path / "gnu")
    summary = ours(archives, tmp_path / "ours")
    assert not summary.refused
    expected = tree_state(tmp_path / "gnu")
    assert tree_state(tmp_path / "ours") == expected
    return expected


def test_two_levels_of_gnu_incremental_archives_give_the_tree_tar_G_gives(tmp_path):
    src = tmp_path / "src-parent" / "src"
    write(src, {"keep.txt": b"keep\n", "mod.txt": b"old\n", "gone.txt": b"gone\n", "old-dir/inside": b"i\n",
                "old-dir/deep/more": b"m\n", "file-to-dir": b"was a file\n", "dir-to-file/x": b"x\n",
                "link-to-dir/y": b"y\n", "sub/kept": b"k\n", "sub/removed": b"r\n"})
    os.symlink("sub", src / "link")
    os.rename(src / "link-to-dir", src / "real")
    os.symlink("real", src / "link-to-dir")
    settle(src)
    full = incremental(src, tmp_path / "snap", tmp_path / "full.tar.zst")
    (src / "file-to-dir").unlink()
    write(src, {"file-to-dir/now": b"a folder now\n", "new.txt": b"new\n", "new-dir/n": b"n\n"})
    (src / "link-to-dir").unlink()
    write(src, {"link-to-dir/z": b"a real folder\n"})
    (src / "mod.txt").write_bytes(b"new content\n")
    os.chmod(src / "keep.txt", 0o600)
    for gone in ("gone.txt", "sub/removed", "link"):
        (src / gone).unlink()
    shutil.rmtree(src / "old-dir")          # after every new folder: no inode of a folder is reused
    shutil.rmtree(src / "dir-to-file")
    (src / "dir-to-file").write_bytes(b"a file now\n")
    settle(src)
    diff = incremental(src, tmp_path / "snap", tmp_path / "diff.tar.zst")
    assert "dumpdir" in kinds(diff)
    tree = same_as_gnu([full, diff], tmp_path)
    assert tree == tree_state(tmp_path / "src-parent")    # and both are the source tree, deletions included
    assert "src/gone.txt" not in tree and "src/old-dir" not in tree
    assert tree["src/file-to-dir"][0] == "dir" and tree["src/dir-to-file"][0] == "file"


def test_a_third_level_after_a_folder_was_emptied_still_matches(tmp_path):
    src = tmp_path / "src-parent" / "src"
    write(src, {"a/1": b"1", "a/2": b"2", "b/3": b"3"})
    settle(src)
    archives = [incremental(src, tmp_path / "snap", tmp_path / "l0.tar.zst")]
    for step, change in enumerate((lambda: [(src / "a" / n).unlink() for n in ("1", "2")],
                                   lambda: write(src, {"a/again": b"back"}))):
        change()
        settle(src)
        archives.append(incremental(src, tmp_path / "snap", tmp_path / f"l{step + 1}.tar.zst"))
    assert same_as_gnu(archives, tmp_path) == tree_state(tmp_path / "src-parent")


# -- archives made by hand --------------------------------------------------------------------------------------
def _gnu_magic(block: bytes) -> bytes:
    """A ustar header block turned into a GNU one (magic "ustar  \\0"), its checksum recomputed."""
    head = bytearray(block[:512])
    head[257:265] = b"ustar  \x00"
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\x00 " % sum(head)
    return bytes(head) + block[512:]


def dumpdir_member(headers: HeaderBuilder, name: str, entries: bytes, form: str) -> bytes:
    if form == "gnu":
        return _gnu_magic(headers.header(name, b"D", 0o755, 0, 0, len(entries), MTIME, data=entries))
    body = pax_records([(b"GNU.dumpdir", entries)])
    return headers.header("././@PaxHeader", b"x", 0o644, 0, 0, len(body), 0, data=body) + \
        headers.header(name, b"5", 0o755, 0, 0, 0, MTIME)


def hand_made(path: Path, members: list[bytes]) -> Path:
    import zstandard
    path.write_bytes(zstandard.ZstdCompressor().compress(b"".join(members) + END_OF_ARCHIVE))
    return path


@pytest.mark.parametrize("form", ["gnu", "pax"])
def test_purge_rules_by_hand_match_gnu_tar(tmp_path, form):
    headers = HeaderBuilder()
    base = [headers.header(name, b"5", 0o755, 0, 0, 0, MTIME) if name.endswith("/") else
            headers.header(name, b"0", 0o644, 0, 0, 2, MTIME, data=b"x\n") for name in
            ("t/", "t/dir-listed-Y/", "t/dir-listed-N/", "t/unlisted-dir/", "t/unlisted-dir/inner", "t/real/",
             "t/real/content", "t/file-listed-D", "t/kept", "t/unlisted")]      # each folder's files after it
    base += [headers.header("t/link-listed-D", b"2", 0o777, 0, 0, 0, MTIME, linkname="real"),
             headers.header("t/unlisted-link", b"2", 0o777, 0, 0, 0, MTIME, linkname="real")]
    first = hand_made(tmp_path / "base.tar.zst", base)
    entries = b"".join(b"%s\x00" % entry for entry in (b"Ndir-listed-N", b"Ydir-listed-Y",
                                                         b"Dfile-listed-D", b"Nkept", b"Dlink-listed-D", b"Dreal"))
    second = hand_made(tmp_path / "purge.tar.zst", [
        dumpdir_member(headers, "t/", entries + b"\x00", form),
        headers.header("t/dir-listed-Y", b"0", 0o644, 0, 0, 4, MTIME, data=b"now\n"),
        headers.header("t/file-listed-D/", b"5", 0o755, 0, 0, 0, MTIME),
        headers.header("t/link-listed-D/", b"5", 0o755, 0, 0, 0, MTIME),
        headers.header("t/", b"5", 0o755, 0, 0, 0, MTIME)])
    tree = same_as_gnu([first, second], tmp_path)
    assert sorted(tree) == ["t", "t/dir-listed-N", "t/dir-listed-Y", "t/file-listed-D", "t/kept",
                            "t/link-listed-D", "t/real", "t/real/content"]
    assert tree["t/link-listed-D"][0] == "dir" and tree["t/file-listed-D"][0] == "dir"


def test_a_purged_symlink_is_removed_as_a_link_and_its_target_stays(tmp_path):
    headers = HeaderBuilder()
    first = hand_made(tmp_path / "a.tar.zst", [
        headers.header("t/", b"5", 0o755, 0, 0, 0, MTIME), headers.header("t/target/", b"5", 0o755, 0, 0, 0, MTIME),
        headers.header("t/target/precious", b"0", 0o644, 0, 0, 2, MTIME, data=b"p\n"),
        headers.header("t/link", b"2", 0o777, 0, 0, 0, MTIME, linkname="target")])
    second = hand_made(tmp_path / "b.tar.zst", [dumpdir_member(headers, "t/", b"Dtarget\x00\x00", "pax")])
    tree = same_as_gnu([first, second], tmp_path)
    assert sorted(tree) == ["t", "t/target", "t/target/precious"]


@pytest.mark.parametrize("data, reason", [
    (b"Ya", "does not end with a NUL"), (b"Ya\x00", "last entry does not end"), (b"Qa\x00\x00", "unknown control"),
    (b"Y\x00\x00", "bad entry name"), (b"Ya/b\x00\x00", "bad entry name"), (b"Y..\x00\x00", "bad entry name"),
    (b"Rold\x00Tnew\x00\x00", "rename entries"), (b"Ya\x00\x00\x00", "an empty entry")])
def test_malformed_dumpdirs_are_refused_with_their_reason(data, reason):
    with pytest.raises(Refused, match=reason):
        parse(data)


def test_a_refused_dumpdir_refuses_its_contents_and_purges_nothing(tmp_path):
    headers = HeaderBuilder()
    first = hand_made(tmp_path / "a.tar.zst", [headers.header("t/", b"5", 0o755, 0, 0, 0, MTIME),
                                               headers.header("t/stays", b"0", 0o644, 0, 0, 2, MTIME, data=b"s\n")])
    second = hand_made(tmp_path / "b.tar.zst", [
        dumpdir_member(headers, "t/", b"Rt/x\x00Tt/y\x00\x00", "gnu"),
        headers.header("t/new", b"0", 0o644, 0, 0, 2, MTIME, data=b"n\n")])
    summary = ours([first, second], tmp_path / "out")
    assert [line.split(":")[0] for line in summary.refused] == ["t/", "t/new"]
    assert sorted(os.listdir(tmp_path / "out" / "t")) == ["stays"]
