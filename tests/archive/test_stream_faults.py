"""A write error anywhere in the compressed stream's pipeline ends close() with that error, at once: the
final flush failing must not leave a thread waiting for an end marker that never comes (issue 9, defect 1)."""
from __future__ import annotations

import errno
import io
import random
import threading

import pytest

from backupd.archive.stream import BUFFER, CompressedStream
from tests.waiting import wait_for

SIZES = [0, 1000, BUFFER + 1, 4 * BUFFER + 3]
DEADLINE = 20.0     # seconds; a healthy close takes well under one


class FailingFile(io.FileIO):
    """A real file whose writes fail like a full disk from the `fail_at`-th on (never when None)."""

    def __init__(self, path, fail_at: int | None = None) -> None:
        super().__init__(path, "wb")
        self.fail_at, self.writes = fail_at, 0

    def write(self, data) -> int:
        self.writes += 1
        if self.fail_at is not None and self.writes >= self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


class FailingFlush(io.FileIO):
    """A real file whose first flush fails (a write-back error reported late)."""

    failed = False

    def flush(self) -> None:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EIO, "Input/output error")


def ended_within_deadline(action) -> BaseException | None:
    """Run `action` in a thread; its exception (None if it returned), failing the test if it is still
    running after DEADLINE."""
    outcome: dict = {}

    def target():
        try:
            action()
        except BaseException as exc:      # handed to the test
            outcome["error"] = exc
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    wait_for(lambda: not worker.is_alive(), "the stream to give up", DEADLINE)
    return outcome.get("error")


def write_and_close(file, data: bytes) -> None:
    stream = CompressedStream(file, level=1, threads=0)    # one thread in zstd: the same writes every time
    try:
        stream.write(data)
        stream.close()
    finally:
        stream.abort()


def writes_needed(tmp_path, data: bytes) -> int:
    with FailingFile(tmp_path / "dry-run") as file:
        write_and_close(file, data)
        return file.writes


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("from_end", [0, 1], ids=["last-write", "second-to-last"])
def test_a_failing_write_at_the_end_ends_close_with_the_error(tmp_path, size, from_end):
    data = random.Random(size).randbytes(size)
    fail_at = max(1, writes_needed(tmp_path, data) - from_end)
    with FailingFile(tmp_path / "out", fail_at) as file:
        error = ended_within_deadline(lambda: write_and_close(file, data))
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC, error
    assert not [t.name for t in threading.enumerate() if t.name.startswith("archive-")]


@pytest.mark.parametrize("size", [0, BUFFER + 1])
def test_a_failing_flush_of_the_file_ends_close_with_the_error(tmp_path, size):
    with FailingFlush(tmp_path / "out", "wb") as file:
        error = ended_within_deadline(lambda: write_and_close(file, random.Random(1).randbytes(size)))
    assert isinstance(error, OSError) and error.errno == errno.EIO, error
