"""The directory source through the real writer and the real `zstd`/`tar` CLIs."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from backupd.archive.writer import ArchiveWriter
from backupd.cancel import CancelToken, Cancelled
from backupd.sources.base import SourceError
from backupd.sources.directory import DirectorySource
from tests.archive.helpers import HEADER, extract, read_manifest, source_config, write_archive


def directory(root: Path, **options) -> DirectorySource:
    return DirectorySource(source_config("etc", "directory", path=root, **options))


def backup(tmp_path: Path, source) -> tuple[Path, object]:
    archive = tmp_path / "run.tar.zst.tmp"
    stats = write_archive(archive, [source], tmp_path / "work")
    return extract(archive, tmp_path / "restored") / source.name, stats


class HookedSink:
    """The writer's sink with test hooks that change the tree at a precise moment of the walk."""

    def __init__(self, sink, before_files=None, after_directory=None):
        self._sink = sink
        self._before_files = before_files or (lambda batch, dir_fd: None)
        self._after_directory = after_directory or (lambda name: None)

    def __getattr__(self, name):
        return getattr(self._sink, name)

    def add_files(self, batch, dir_fd=None):
        self._before_files(batch, dir_fd)
        self._sink.add_files(batch, dir_fd=dir_fd)

    def add_directory(self, name, st):
        self._sink.add_directory(name, st)
        self._after_directory(name)


def make_etc(root: Path) -> None:
    for rel in ("hosts", "app/app.conf", "app/.app.conf.swp", "ssl/private/key.pem", "ssl/certs/ca.pem",
                "cache/private/x", "deep/a/b/c.swp"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"content of {rel}\n")


def test_excludes_match_relative_paths_and_base_names(tmp_path):
    root = tmp_path / "etc"
    make_etc(root)
    restored, _ = backup(tmp_path, directory(root, exclude=("*.swp", "ssl/private", "/cache/")))
    files = sorted(str(p.relative_to(restored)) for p in restored.rglob("*") if p.is_file())
    assert files == ["app/app.conf", "hosts", "ssl/certs/ca.pem"]
    assert (restored / "ssl").is_dir() and not (restored / "ssl" / "private").exists()
    assert (restored / "hosts").read_text() == "content of hosts\n"


def test_symlinks_are_stored_as_links_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("must not be archived\n")
    root = tmp_path / "etc"
    root.mkdir()
    os.symlink(outside, root / "to-dir")
    os.symlink(outside / "secret.txt", root / "to-file")
    restored, stats = backup(tmp_path, directory(root))
    assert os.readlink(restored / "to-dir") == str(outside)
    assert os.readlink(restored / "to-file") == str(outside / "secret.txt")
    assert stats.bytes_in == 0 and stats.members == 3


def test_file_deleted_between_scan_and_read_is_a_warning(tmp_path):
    root = tmp_path / "etc"
    make_etc(root)

    def delete_app_conf(batch, dir_fd):
        for name, path, _ in batch:
            if name == "app/app.conf":
                os.unlink(path, dir_fd=dir_fd)

    archive = tmp_path / "run.tar.zst.tmp"
    with ArchiveWriter(archive, header=HEADER) as writer:
        directory(root).write(HookedSink(writer.source("etc"), before_files=delete_app_conf), tmp_path)
        stats = writer.finish()
    restored = extract(archive, tmp_path / "restored")
    warning = read_manifest(restored)["warnings"]
    assert warning == stats.warnings and [w["member"] for w in warning] == ["etc/app/app.conf"]
    assert "vanished" in warning[0]["message"] and str(root / "app" / "app.conf") in warning[0]["message"]
    assert not (restored / "etc" / "app" / "app.conf").exists()
    assert (restored / "etc" / "app" / ".app.conf.swp").read_text() == "content of app/.app.conf.swp\n"


def test_fifo_and_socket_are_skipped_with_a_warning(tmp_path):
    root = tmp_path / "etc"
    root.mkdir()
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    try:
        (root / "plain").write_text("x")
        restored, stats = backup(tmp_path, directory(root))
    finally:
        sock.close()
    messages = {w["member"]: w["message"] for w in stats.warnings}
    assert "named pipe" in messages["etc/pipe"] and "socket" in messages["etc/sock"]
    assert sorted(os.listdir(restored)) == ["plain"]


def test_missing_root_fails_naming_the_path(tmp_path):
    with pytest.raises(SourceError, match=f"^cannot read {tmp_path / 'nope'}: No such file"):
        backup(tmp_path, directory(tmp_path / "nope"))
    assert not (tmp_path / "run.tar.zst.tmp").exists()


def run_as_nobody(fn) -> str:
    """Run `fn` in a forked child as uid/gid 65534; returns what it printed (its error, or 'ok')."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                fn()
                result = "ok"
            except Exception as exc:   # reported to the parent, which asserts on it
                result = f"{type(exc).__name__}: {exc}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged uid in a child")
@pytest.mark.parametrize("what", ["directory", "file"])
def test_unreadable_path_fails_the_run_naming_it(what):
    scratch = Path(tempfile.mkdtemp(prefix="backupd-perm-"))   # pytest's tmp_path is private to root
    try:
        check_unreadable(scratch, what)
    finally:
        shutil.rmtree(scratch)


def check_unreadable(tmp_path: Path, what: str) -> None:
    os.chmod(tmp_path, 0o755)
    root = tmp_path / "etc"
    make_etc(root)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    blocked = root / "ssl" if what == "directory" else root / "hosts"
    os.chmod(blocked, 0)
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    result = run_as_nobody(lambda: backup(out, directory(root)))
    assert result.startswith("SourceError") and str(blocked) in result, result
    assert "Permission denied" in result
    assert not (out / "run.tar.zst.tmp").exists()


def test_one_file_system_stops_at_mount_points(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat("/dev").st_dev:
        pytest.skip("needs /dev/shm mounted separately from /dev to have a mount point inside a tree")
    marker = shm / f"backupd-test-{uuid.uuid4().hex}"
    marker.write_text("on another file system\n")
    try:
        source = DirectorySource(source_config("dev", "directory", path=Path("/dev"), one_file_system=True,
                                               exclude=("pts", "mqueue", "hugepages")))
        restored, _ = backup(tmp_path, source)
    finally:
        marker.unlink()
    assert (restored / "shm").is_dir() and not (restored / "shm" / marker.name).exists()


def test_archive_being_written_inside_the_tree_is_not_archived(tmp_path):
    """Backing up a parent of the spool directory must not read the growing archive into itself."""
    root = tmp_path / "var"
    make_etc(root)
    spool = root / "lib" / "backupd" / "spool"
    spool.mkdir(parents=True)
    archive = spool / "run.tar.zst.tmp"
    write_archive(archive, [directory(root, exclude=(str(root / "ssl"),))], tmp_path / "work")
    restored = extract(archive, tmp_path / "restored") / "etc"
    assert (restored / "lib" / "backupd" / "spool").is_dir()
    assert os.listdir(restored / "lib" / "backupd" / "spool") == []
    assert not (restored / "ssl").exists() and (restored / "hosts").exists()


def test_directory_swapped_for_a_link_during_the_walk_is_not_followed(tmp_path):
    """A directory replaced by a symbolic link after it was listed (a classic race) is not descended."""
    root = tmp_path / "etc"
    make_etc(root)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("outside the source\n")

    def swap_app(name):
        if name == "app":
            os.rename(root / "app", tmp_path / "app-moved")
            os.symlink(tmp_path / "elsewhere", root / "app")

    archive = tmp_path / "run.tar.zst.tmp"
    with ArchiveWriter(archive, header=HEADER) as writer:
        directory(root).write(HookedSink(writer.source("etc"), after_directory=swap_app), tmp_path)
        stats = writer.finish()
    restored = extract(archive, tmp_path / "restored") / "etc"
    assert not (restored / "app" / "secret").exists()
    assert [(w["member"], "not followed" in w["message"]) for w in stats.warnings] == [("etc/app", True)]


def test_file_growing_between_listing_and_read_is_archived_as_read(tmp_path):
    """Regular files are stat'ed once open, so a change after the listing is simply the state read,
    consistent with its header and manifest entry (growth *during* the read is a writer test)."""
    root = tmp_path / "etc"
    make_etc(root)

    def grow_hosts(batch, dir_fd):
        if any(name == "hosts" for name, _, _ in batch):
            with open(root / "hosts", "a") as f:
                f.write("appended later\n")

    archive = tmp_path / "run.tar.zst.tmp"
    with ArchiveWriter(archive, header=HEADER) as writer:
        directory(root).write(HookedSink(writer.source("etc"), before_files=grow_hosts), tmp_path)
        stats = writer.finish()
    restored = extract(archive, tmp_path / "restored")
    assert (restored / "etc" / "hosts").read_text() == "content of hosts\nappended later\n"
    entry = next(m for m in read_manifest(restored)["members"] if m["name"] == "etc/hosts")
    assert entry["size"] == (root / "hosts").stat().st_size and stats.warnings == []


def test_cancel_interrupts_a_large_flat_directory(tmp_path):
    """Cancellation is seen between batches of files, not only between directories."""
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(1000):
        (root / f"f{i:04d}").write_bytes(b"x")
    token = CancelToken()
    batches = []

    def cancel_after_first(batch, dir_fd):
        batches.append(len(batch))
        token.cancel("stop requested")

    archive = tmp_path / "run.tar.zst.tmp"
    with pytest.raises(Cancelled, match="stop requested"):
        with ArchiveWriter(archive, header=HEADER, cancel=token) as writer:
            directory(root).write(HookedSink(writer.source("etc"), before_files=cancel_after_first), tmp_path)
            writer.finish()
    assert batches == [256] and not archive.exists()     # stopped inside the directory
