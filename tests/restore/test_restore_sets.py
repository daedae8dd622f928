"""Restore of a differential over its full (hand-made sets, tests/restore/sets.py): the staged tree must be
exactly the differential's manifest; the real `tar -G` and `dd` give the same tree."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from backupd.restore import RestoreError, extract_archive, restore_set, verify_archive
from backupd.restore.delta import patch
from tests.archive.helpers import tree_state
from tests.restore.sets import SetWriter, settle as settle_at, write

pytestmark = pytest.mark.skipif(shutil.which("tar") is None or shutil.which("zstd") is None,
                                reason="needs GNU tar and zstd")
STAMP = 1_650_000_000


def settle(root: Path) -> None:
    settle_at(root, STAMP)


@pytest.fixture
def sets(tmp_path):
    """(writer, source tree, full archive): the tree's first state, archived as a full."""
    src = tmp_path / "live" / "src"
    write(src, {"same.txt": b"same\n", "mod.txt": b"old\n", "gone.txt": b"gone\n", "dir/a": b"a\n",
                "old-name/inside": b"moved\n", "file-then-dir": b"f\n", "dir-then-file/x": b"x\n",
                "app.log": b"line\n" * 20_000, "perm.txt": b"p\n", "locked/inner": b"l\n"})
    os.symlink("same.txt", src / "link")
    os.chmod(src / "locked", 0o555)
    settle(src)
    writer = SetWriter(tmp_path / "work", delta_files=("*.log",))
    full = writer.write_full(src, tmp_path / "full.tar.zst")
    yield writer, src, full
    for folder, dirs, _ in os.walk(tmp_path):
        for name in dirs:
            os.chmod(Path(folder, name), 0o755)


def change(src: Path) -> None:
    """Modified, new, deleted files and folders, a renamed folder, a file become a folder and back,
    a symlink retargeted, a permission-only change, a delta'd log, a read-only folder made writable."""
    (src / "mod.txt").write_bytes(b"new content\n")
    write(src, {"new.txt": b"new\n", "new-dir/deep/n": b"n\n"})
    (src / "gone.txt").unlink()
    os.rename(src / "old-name", src / "new-name")
    (src / "file-then-dir").unlink()
    write(src, {"file-then-dir/inside": b"now a folder\n"})
    shutil.rmtree(src / "dir-then-file")
    (src / "dir-then-file").write_bytes(b"now a file\n")
    (src / "link").unlink()
    os.symlink("mod.txt", src / "link")
    os.chmod(src / "perm.txt", 0o600)
    with open(src / "app.log", "ab") as log:
        log.write(b"appended\n" * 1000)
    os.chmod(src / "locked", 0o755)
    settle(src)


def test_full_then_differential_restores_the_later_tree_exactly(sets, tmp_path):
    writer, src, full = sets
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    summary = restore_set(open(full, "rb"), open(diff, "rb"), tmp_path / "out", full_sha256=writer.full_sha256)
    assert tree_state(tmp_path / "out") == tree_state(src.parent)
    assert summary.files == sum(1 for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert summary.archive_sha256 and not summary.refused


def test_real_tar_G_and_dd_give_the_same_tree(sets, tmp_path):
    writer, src, full = sets
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    out = tmp_path / "tar"
    out.mkdir()
    for archive in (full, diff):
        subprocess.run(f"zstd -qdc '{archive}' | tar -G -x -C '{out}'", shell=True, check=True)
    extent = next((out / ".backupd-delta/src").glob("app.log@*"))
    subprocess.run(["dd", f"if={extent}", f"of={out}/src/app.log", "bs=1M", f"seek={extent.name.rsplit('@', 1)[1]}",
                    "oflag=seek_bytes", "conv=notrunc", "status=none"], check=True)
    mtime = (src / "app.log").stat().st_mtime
    os.utime(out / "src" / "app.log", (mtime, mtime))   # dd leaves the time it ran (the README says so)
    shutil.rmtree(out / ".backupd-delta")
    (out / "MANIFEST.json").unlink()
    os.utime(out / "src", (STAMP, STAMP))          # the folder's mtime, changed by the replacement
    assert tree_state(out) == tree_state(src.parent)


def test_a_differential_alone_is_refused_naming_its_full(sets, tmp_path):
    writer, src, _ = sets
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst", base_name="job-host-full.tar.zst")
    with pytest.raises(RestoreError, match="needs its full, job-host-full.tar.zst; pass it with --base"):
        extract_archive(open(diff, "rb"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_wrong_full_is_refused_and_nothing_lands(sets, tmp_path):
    writer, src, _ = sets
    (src / "only-in-the-other-full").write_bytes(b"o\n")
    other = SetWriter(tmp_path / "other").write_full(src, tmp_path / "other.tar.zst")
    (src / "only-in-the-other-full").unlink()
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    (tmp_path / "out").mkdir()
    with pytest.raises(RestoreError, match="not of the full given"):
        restore_set(open(other, "rb"), open(diff, "rb"), tmp_path / "out")
    assert os.listdir(tmp_path / "out") == []


def test_a_corrupted_differential_is_refused(sets, tmp_path):
    writer, src, full = sets
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    data = bytearray(diff.read_bytes())
    recorded = hashlib.sha256(data).hexdigest()
    data[len(data) // 2] ^= 0x40
    diff.write_bytes(bytes(data))
    assert not verify_archive(open(diff, "rb"), recorded).ok
    with pytest.raises(RestoreError, match="archive does not verify: .*nothing restored"):
        restore_set(open(full, "rb"), open(diff, "rb"), tmp_path / "out", differential_sha256=recorded)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("linked", [False, True])
def test_extents_are_written_in_place_unless_the_file_has_other_links(tmp_path, linked):
    (tmp_path / "log").write_bytes(b"start\n")
    (tmp_path / "in-place").write_bytes(b"S")
    (tmp_path / "grown").write_bytes(b"grown\n")
    if linked:
        os.link(tmp_path / "log", tmp_path / "other-link")
    inode = (tmp_path / "log").stat().st_ino
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    extents = [(os.open(tmp_path / "in-place", os.O_RDONLY), 0), (os.open(tmp_path / "grown", os.O_RDONLY), 6)]
    try:
        made = patch(folder, "log", extents, "log")
    finally:
        for fd, _ in extents:
            os.close(fd)
        os.close(folder)
    assert (tmp_path / "log").read_bytes() == b"Start\ngrown\n"
    assert (made.size, made.sha256) == (12, hashlib.sha256(b"Start\ngrown\n").hexdigest())
    assert ((tmp_path / "log").stat().st_ino == inode) is not linked
    if linked:
        assert (tmp_path / "other-link").read_bytes() == b"start\n"


def test_a_full_that_is_not_the_one_the_manifest_describes_is_refused(sets, tmp_path):
    """A full whose kept file is not the one the differential's manifest says (its base sha256 matching):
    the staged tree is not the complete state."""
    writer, src, _ = sets
    genuine = dict(writer.full_files)
    genuine["src/same.txt"] = (writer.full_files["src/same.txt"][0], Path("unused"))
    (src / "same.txt").write_bytes(b"SAME\n")
    settle(src)
    tampered = writer.write_full(src, tmp_path / "tampered.tar.zst")
    writer.full_files = genuine             # the differential keeps the genuine same.txt, names this full
    (src / "same.txt").write_bytes(b"same\n")
    settle(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    with pytest.raises(RestoreError, match="differs: src/same.txt: sha256 differs from the manifest"):
        restore_set(open(tampered, "rb"), open(diff, "rb"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_tree_that_is_less_than_the_manifest_is_refused(sets, tmp_path):
    writer, src, full = sets
    never = {"name": "src/never", "type": "file", "size": 1, "sha256": "0" * 64, "in": "full"}
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst", add=(never,))
    with pytest.raises(RestoreError, match="missing after the restore: src/never"):
        restore_set(open(full, "rb"), open(diff, "rb"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_what_the_full_had_and_the_complete_state_lacks_is_removed_with_a_warning(sets, tmp_path):
    """A file that vanished while the differential was made, after its folder was listed: the dumpdir keeps
    its name, the manifest does not list it. The tree restored is the manifest's, and says so."""
    writer, src, full = sets
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst", drop=("src/perm.txt",))
    summary = restore_set(open(full, "rb"), open(diff, "rb"), tmp_path / "out")
    assert not (tmp_path / "out/src/perm.txt").exists() and (tmp_path / "out/src/same.txt").exists()
    assert any(w.startswith("src/perm.txt: in the full, not in") for w in summary.warnings)


def test_a_selection_restores_the_selected_part_of_the_later_tree(sets, tmp_path):
    writer, src, full = sets
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    restore_set(open(full, "rb"), open(diff, "rb"), tmp_path / "out", paths=["src/*.log", "src/new-name"])
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == \
        ["src", "src/app.log", "src/new-name", "src/new-name/inside"]
    assert (tmp_path / "out/src/app.log").read_bytes() == (src / "app.log").read_bytes()


def test_verify_of_a_differential_checks_the_members_it_holds(sets, tmp_path):
    writer, src, _ = sets
    change(src)
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst")
    report = verify_archive(open(diff, "rb"))
    assert report.ok, report.problems()
    listed = subprocess.run(f"zstd -qdc '{diff}' | tar -t", shell=True, capture_output=True, text=True).stdout
    assert report.members == len(listed.splitlines()) - 1          # all but MANIFEST.json
    assert any(line.startswith(".backupd-delta/src/app.log@") for line in listed.splitlines()) and "src/same.txt" not in listed.splitlines()


def test_extras_below_an_extra_folder_are_left_to_its_removal():
    from backupd.restore.ledger import Ledger
    ledger = Ledger()
    try:
        for name, kind in (("a", "dir"), ("a-b", "dir"), ("a/b", "dir"), ("a/b/c", "file"), ("a-b/x", "file"),
                           ("keep", "file"), ("z", "file")):
            ledger.add((name, kind, 0, "0" * 64 if kind == "file" else "", ""))
        ledger.expect([("keep", "file", 0, "0" * 64, "")])
        assert ledger.extras() == [("a", True), ("a-b", True), ("z", False)]
    finally:
        ledger.close()


@pytest.mark.parametrize("bad", [{"sha256": "x" * 64}, {"sha256": 7}, {"size": "big"}, {"sha256": "ab"}])
def test_a_malformed_manifest_entry_is_a_one_line_refusal(sets, tmp_path, bad):
    """What a flipped bit in a manifest's line can make of it (zstd may decode it without complaint)."""
    writer, src, full = sets
    entry = {"name": "src/odd", "type": "file", "size": 1, "sha256": "0" * 64, "in": "full", **bad}
    diff = writer.write_differential(src, tmp_path / "diff.tar.zst", add=(entry,))
    with pytest.raises(RestoreError, match="the entry of 'src/odd' is malformed; nothing restored"):
        restore_set(open(full, "rb"), open(diff, "rb"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
