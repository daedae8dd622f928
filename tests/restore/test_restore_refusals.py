"""Crafted malicious archives: every rule refuses its member, names it, and nothing appears outside DIR."""
from __future__ import annotations

import os
import stat
import tarfile

import pytest

from backupd.restore import extract_archive
from tests.archive.helpers import tree_state
from tests.restore.crafted import craft, directory, file, hardlink, member, symlink


@pytest.fixture
def world(tmp_path):
    """A sentinel folder beside the restore folder, with a victim file whose content, mode and mtime
    must survive every restore."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("do not touch\n")
    os.chmod(outside / "victim", 0o600)
    os.utime(outside / "victim", (1_600_000_000, 1_600_000_000))
    return tmp_path, outside, tree_state(outside)


def restore(world, members):
    tmp_path, outside, before = world
    archive = craft(tmp_path / "crafted.tar.zst", [file("ok.txt"), *members])
    target = tmp_path / "restore"
    summary = extract_archive(open(archive, "rb"), target)
    assert tree_state(outside) == before, "something was written outside the restore folder"
    assert (target / "ok.txt").read_text() == "data\n", "the harmless member is restored"
    assert not [name for name in os.listdir(target) if name.startswith(".backupd-restore-")]
    return target, summary


def refused(summary, name: str) -> str:
    """The one refusal line that names `name`."""
    lines = [line for line in summary.refused if line.startswith(name + ": ")]
    assert len(lines) == 1, summary.refused
    assert "\n" not in lines[0]
    return lines[0]


def test_dotdot_component_is_refused(world):
    target, summary = restore(world, [file("../outside/victim", b"owned\n"), file("a/../../outside/x")])
    assert "'..' component" in refused(summary, "../outside/victim")
    assert "'..' component" in refused(summary, "a/../../outside/x")


def test_absolute_name_is_refused(world):
    _, outside, _ = world
    name = str(outside / "victim")
    target, summary = restore(world, [file(name, b"owned\n"), file("/etc/backupd-restore-test")])
    assert "absolute name" in refused(summary, name)
    assert not os.path.exists("/etc/backupd-restore-test")


@pytest.mark.parametrize("link, dest", [("esc", "../outside"), ("sub/esc", "../../outside"),
                                        ("abs", "/tmp"), ("odd", "sub/../../outside")])
def test_symlink_leaving_the_folder_is_refused_and_nothing_goes_through_it(world, link, dest):
    _, outside, _ = world
    dest = str(outside) if dest == "/tmp" else dest
    target, summary = restore(world, [directory("sub/"), symlink(link, dest), file(link + "/victim", b"owned\n")])
    assert "symlink" in refused(summary, link)
    assert "refused" in refused(summary, link + "/victim")
    assert not os.path.lexists(target / link)


def test_member_written_through_an_earlier_symlink_is_refused(world):
    """d/up -> .. points inside the folder (allowed), but d/up/x would be written through it."""
    target, summary = restore(world, [directory("d/"), symlink("d/up", ".."), file("d/up/x", b"through\n"),
                                      symlink("d/self", "."), directory("d/self/sub/")])
    assert os.readlink(target / "d/up") == ".."
    assert "d/up is a symlink: nothing is written through it" in refused(summary, "d/up/x")
    assert "d/self is a symlink" in refused(summary, "d/self/sub/")
    assert not (target / "x").exists() and not (target / "d/sub").exists()


def test_symlink_then_same_name_as_file_replaces_the_link_not_its_target(world):
    target, summary = restore(world, [symlink("ok2", "ok.txt"), file("ok2", b"second\n")])
    assert not os.path.islink(target / "ok2") and (target / "ok2").read_text() == "second\n"
    assert (target / "ok.txt").read_text() == "data\n"


def test_hard_links_only_to_files_this_restore_wrote(world):
    _, outside, _ = world
    target, summary = restore(world, [
        hardlink("h-dotdot", "../outside/victim"), hardlink("h-abs", str(outside / "victim")),
        hardlink("h-later", "later.txt"), file("later.txt"), symlink("l", "ok.txt"), hardlink("h-link", "l"),
        directory("dir/"), hardlink("h-dir", "dir"), hardlink("h-ok", "ok.txt")])
    assert "'..' component in the hard link target" in refused(summary, "h-dotdot")
    assert "absolute hard link target" in refused(summary, "h-abs")
    assert "which was not extracted" in refused(summary, "h-later")
    assert "not a regular file" in refused(summary, "h-link")
    assert "not a regular file" in refused(summary, "h-dir")
    assert os.path.samefile(target / "h-ok", target / "ok.txt")
    assert summary.hardlinks == 1 and len(summary.refused) == 5


@pytest.mark.parametrize("kind, reason", [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
                                          (tarfile.FIFOTYPE, "FIFO")])
def test_devices_and_fifos_are_refused(world, kind, reason):
    target, summary = restore(world, [member("dev/node", kind)])
    assert reason in refused(summary, "dev/node")
    assert not os.path.lexists(target / "dev/node")


def test_setuid_setgid_sticky_bits_are_dropped_and_reported(world):
    target, summary = restore(world, [file("bin/su", b"#!/bin/sh\n", mode=0o4755), directory("shared/", 0o2775),
                                      directory("tmp/", 0o1777), file("plain", mode=0o755)])
    assert stat.S_IMODE(os.stat(target / "bin/su").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(target / "shared").st_mode) == 0o775
    assert stat.S_IMODE(os.stat(target / "tmp").st_mode) == 0o777
    assert [line.split(":")[0] for line in summary.warnings] == ["bin/su", "shared/", "tmp/"]
    assert "setuid bit not restored (mode 4755 -> 0755)" in summary.warnings[0]


def test_empty_components_are_refused(world):
    target, summary = restore(world, [file("a//b")])
    assert "empty component" in refused(summary, "a//b")
