"""Descriptors of an extraction: many small files restore under a low descriptor limit, and a failure after
files were written is the restore's one error, with every descriptor closed."""
from __future__ import annotations

import os
import resource

import pytest

from backupd.restore import RestoreError, extract_archive
from tests.restore.crafted import craft, file


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_small_files_restore_under_a_low_descriptor_limit(tmp_path):
    members = [file(f"s/{index // 100}/f{index}.txt", b"x" * (index % 300)) for index in range(1500)]
    archive = craft(tmp_path / "small.tar.zst", members)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_descriptors() + 32, hard))
    try:
        summary = extract_archive(open(archive, "rb"), tmp_path / "out")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert summary.files == 1500 and (tmp_path / "out/s/14/f1499.txt").read_bytes() == b"x" * (1499 % 300)


def test_a_failure_after_files_were_written_is_the_one_error_and_closes_every_descriptor(tmp_path):
    members = [file(f"s/f{index}.txt") for index in range(300)]
    archive = craft(tmp_path / "late.tar.zst", [*members, file("MANIFEST.json", b"{}"), file("late.txt")])
    before = open_descriptors()
    with open(archive, "rb") as stream, pytest.raises(RestoreError) as caught:
        extract_archive(stream, tmp_path / "out")
    assert str(caught.value) == "member 'late.txt' follows MANIFEST.json, which must be last; nothing restored"
    assert not (tmp_path / "out").exists() and open_descriptors() == before
