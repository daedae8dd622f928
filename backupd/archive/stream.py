"""The compressed output: coalesces small writes, compresses with zstd worker threads, hashes what it writes."""
from __future__ import annotations

import hashlib
import os

import zstandard

COALESCE = 1 << 20          # small members are gathered into buffers of about this size
WRITE_BUFFER = 1 << 20
# zstd's default job for level 3 is 8 MiB, and its workers keep several jobs' input and output buffers:
# ~80 MiB of RSS on 2 cores. 2 MiB jobs keep that near 25 MiB at the same speed and a similar ratio.
JOB_SIZE = 2 << 20


class CompressedStream:
    """Bytes in, zstd frame out to `file`; tracks bytes in/out and the sha256 of the output."""

    def __init__(self, file, level: int, threads: int = -1) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=JOB_SIZE)
        self._compress = zstandard.ZstdCompressor(compression_params=params).compressobj()
        self._file = file
        self._parts: list[bytes] = []   # queued small pieces, joined once per COALESCE bytes
        self._queued = 0
        self._sha = hashlib.sha256()
        self.bytes_out = 0

    def write(self, data: bytes) -> None:
        """Queue a small piece (kept by reference: pass immutable bytes); compressed once about
        COALESCE bytes are waiting. A list and one join beat growing a bytearray from empty each time."""
        self._parts.append(data)
        self._queued += len(data)
        if self._queued >= COALESCE:
            self.flush_pending()

    def flush_pending(self) -> None:
        """Hand what is queued to the compressor."""
        if self._parts:
            self._emit(self._compress.compress(b"".join(self._parts)))
            self._parts.clear()
            self._queued = 0

    def write_large(self, data) -> None:
        """Compress a large buffer directly (after anything queued)."""
        self.flush_pending()
        self._emit(self._compress.compress(data))

    def _emit(self, out: bytes) -> None:
        if out:
            self._sha.update(out)
            self._file.write(out)
            self.bytes_out += len(out)

    def close(self) -> str:
        """End the zstd frame, flush and fsync the file; returns the hex sha256 of everything written."""
        self.flush_pending()
        self._emit(self._compress.flush())
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._sha.hexdigest()
