"""The compressed output stream: one valid zstd frame, output hash, and errors from its thread."""
from __future__ import annotations

import errno
import hashlib
import io
import random
import subprocess

import pytest

from backupd.archive.stream import BUFFER, CompressedStream


class FullDisk(io.RawIOBase):
    """A file that accepts `room` bytes, then fails like a full disk."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)


def test_mixed_small_and_large_writes_make_one_frame_zstd_can_read(tmp_path):
    rng = random.Random(3)
    pieces = [rng.randbytes(rng.choice([1, 100, 4000, BUFFER + 17, 3 * BUFFER])) for _ in range(40)]
    path = tmp_path / "out.zst"
    with open(path, "wb") as out:
        stream = CompressedStream(out, level=3)
        for piece in pieces:
            if len(piece) <= BUFFER and rng.random() < 0.5:
                buffer = stream.take_buffer()
                buffer[:len(piece)] = piece
                stream.submit(buffer, len(piece))
            else:
                stream.write(piece)
        digest = stream.close()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stream.bytes_out == path.stat().st_size
    restored = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    assert restored == b"".join(pieces)


def test_write_error_in_the_compressor_thread_reaches_the_producer():
    stream = CompressedStream(FullDisk(room=100_000), level=1)
    data = random.Random(1).randbytes(BUFFER)
    with pytest.raises(OSError) as caught:
        for _ in range(64):
            stream.write(data)
        stream.close()
    assert caught.value.errno == errno.ENOSPC
    stream.abort()
