"""What a differential decides per file: unchanged by metadata, hashed where metadata leaves doubt."""
from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timezone

from backupd.archive.base_index import BaseIndex
from backupd.archive.differ import Differ, dumpdir

DAY_AGO = time.time() - 86400


def index_of(folder, started: float) -> BaseIndex:
    entries = []
    for name in sorted(os.listdir(folder)):
        st = os.stat(folder / name)
        entries.append({"name": f"src/{name}", "type": "file", "size": st.st_size,
                        "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
                        "stat": [st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns]})
    started_iso = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")
    return BaseIndex(entries, {"started": started_iso})


def decide(folder, differ: Differ) -> dict[str, bool]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return {name: differ.unchanged(f"src/{name}", os.lstat(folder / name), name, fd) is not None
                for name in sorted(os.listdir(folder))}
    finally:
        os.close(fd)


def test_old_files_with_their_metadata_are_unchanged_without_reading_them(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name * 10)
        os.utime(tmp_path / name, (DAY_AGO, DAY_AGO))
    differ = Differ(index_of(tmp_path, time.time()))
    assert decide(tmp_path, differ) == {"a": True, "b": True, "c": True} and differ.hashed == 0


def test_doubt_is_settled_by_the_content(tmp_path):
    for name in ("chmod-undone", "same-size-edit", "recent"):
        (tmp_path / name).write_text("0123456789")
        os.utime(tmp_path / name, (DAY_AGO, DAY_AGO))
    (tmp_path / "recent").write_text("0123456789")    # mtime now, after the full started: it could have been
                                                       # written again in the same tick, so it is read
    differ = Differ(index_of(tmp_path, time.time() - 5))
    os.chmod(tmp_path / "chmod-undone", 0o600)
    os.chmod(tmp_path / "chmod-undone", 0o644)                      # the ctime moved, nothing else
    with open(tmp_path / "same-size-edit", "r+") as edit:           # same size, mtime put back
        edit.write("X")
    os.utime(tmp_path / "same-size-edit", (DAY_AGO, DAY_AGO))
    assert decide(tmp_path, differ) == {"chmod-undone": True, "recent": True, "same-size-edit": False}
    assert differ.hashed == 3


def test_content_mode_hashes_every_file_whose_metadata_matches(tmp_path):
    (tmp_path / "a").write_text("a")
    os.utime(tmp_path / "a", (DAY_AGO, DAY_AGO))
    differ = Differ(index_of(tmp_path, time.time()), detect="content")
    assert decide(tmp_path, differ) == {"a": True} and differ.hashed == 1


def test_a_changed_size_mode_or_owner_needs_no_hashing(tmp_path):
    (tmp_path / "grown").write_text("a")
    (tmp_path / "mode").write_text("b")
    for name in ("grown", "mode"):
        os.utime(tmp_path / name, (DAY_AGO, DAY_AGO))
    differ = Differ(index_of(tmp_path, time.time()))
    (tmp_path / "grown").write_text("aa")
    os.chmod(tmp_path / "mode", 0o600)
    assert decide(tmp_path, differ) == {"grown": False, "mode": False} and differ.hashed == 0


def test_a_dumpdir_lists_names_sorted_with_their_codes():
    assert dumpdir([(b"b", b"Y"), (b"a", b"N"), (b"sub", b"D")]) == b"Na\x00Yb\x00Dsub\x00\x00"
