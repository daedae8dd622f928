"""The compressed output: coalesces small writes; a compressor thread feeds zstd's worker threads and a
writer thread hashes and writes its output, so the reading thread never waits for compression or the disk."""
from __future__ import annotations

import hashlib
import os
import queue
import threading

import zstandard

BUFFER = 1 << 20            # pooled buffers: small members are gathered, large files read, into these
DEPTH = 3                   # buffers waiting for the compressor thread
OUT_CHUNK = 64 << 10        # zstd output is handed over in pieces of this size (below malloc's mmap limit)
OUT_BUFFER = 1 << 20        # ... and gathered into pooled buffers of this size for the writer thread
OUT_DEPTH = 2               # output buffers waiting for the writer thread
# zstd's default job for level 3 is 8 MiB, and its workers keep several jobs' input and output buffers:
# ~80 MiB of RSS on 2 cores. 2 MiB jobs keep that near 25 MiB at the same speed and a similar ratio.
JOB_SIZE = 2 << 20
WRITEBACK = 16 << 20        # the writer thread starts the disk writeback of each this many bytes written, so
                            # the final fsync has little left to wait for (it was ~0.3 s per 500 MiB)
_SYNC_FILE_RANGE_WRITE = 2
_END = None


def _writeback_starter(file):
    """start(offset, length): begin writing `file`'s dirty pages in the range to disk without waiting
    (Linux sync_file_range); a no-op where that or a descriptor is not available."""
    try:
        fd = file.fileno()
        import ctypes
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError, ValueError):
        return lambda offset, length: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return lambda offset, length: call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _write_all(file, data) -> None:
    """file.write until all of `data` is written (a raw file may write short)."""
    written = file.write(data)
    if written is not None and written < len(data):
        with memoryview(data) as view:
            while written < len(view):
                written += file.write(view[written:])


class _Output:
    """Where zstd writes its output: gathered into OUT_BUFFER pieces that a writer thread hashes
    (hashlib releases the GIL on large buffers), writes to the file and starts writing back to disk."""

    def __init__(self, file) -> None:
        self.file = file
        self.sha = hashlib.sha256()
        self.bytes_out = 0
        self.error: BaseException | None = None
        self._work: queue.Queue = queue.Queue(OUT_DEPTH)
        self._free: queue.Queue = queue.Queue()
        self._current = bytearray(OUT_BUFFER)
        self._pos = 0
        self._thread = threading.Thread(target=self._run, name="archive-writer", daemon=True)
        self._thread.start()

    def write(self, data) -> int:
        """Called by zstd (in the compressor thread) with at most OUT_CHUNK bytes."""
        size, pos = len(data), self._pos
        if pos + size > OUT_BUFFER:
            self.hand_over()
            pos = 0
        self._current[pos:pos + size] = data
        self._pos = pos + size
        return size

    def hand_over(self) -> None:
        """Pass the gathered output to the writer thread."""
        if self.error is not None:
            raise self.error
        if self._pos:
            self._work.put((self._current, self._pos))
            try:
                self._current = self._free.get_nowait()
            except queue.Empty:
                self._current = bytearray(OUT_BUFFER)
            self._pos = 0

    def close(self) -> None:
        """Write what is gathered and stop the writer thread; raises its error if it had one."""
        try:
            self.hand_over()
        finally:
            self.stop()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._work.put(_END)
            self._thread.join()

    def _run(self) -> None:
        sha, file, start_writeback, synced = self.sha, self.file, _writeback_starter(self.file), 0
        while (item := self._work.get()) is not _END:
            buffer, length = item
            if self.error is None:
                try:
                    with memoryview(buffer) as view:
                        piece = view[:length]
                        sha.update(piece)
                        _write_all(file, piece)
                        piece.release()
                    self.bytes_out += length
                    if self.bytes_out - synced >= WRITEBACK:
                        start_writeback(synced, self.bytes_out - synced)
                        synced = self.bytes_out
                except BaseException as exc:    # handed to the compressor thread on its next piece
                    self.error = exc
            self._free.put(buffer)


class CompressedStream:
    """Bytes in, one zstd frame out to `file`; tracks bytes out and the sha256 of the output.

    Memory is fixed: pieces are copied into pooled BUFFER-sized bytearrays (at most DEPTH + 2 exist)
    and zstd hands its output over in OUT_CHUNK pieces, so no large object is allocated per piece."""

    def __init__(self, file, level: int, threads: int = -1) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=JOB_SIZE)
        self._out = _Output(file)
        self._zstd = zstandard.ZstdCompressor(compression_params=params).stream_writer(
            self._out, write_size=OUT_CHUNK, closefd=False)
        self._work: queue.Queue = queue.Queue(DEPTH)
        self._free: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._current = bytearray(BUFFER)
        self._pos = 0
        self._thread = threading.Thread(target=self._run, name="archive-compressor", daemon=True)
        self._thread.start()

    @property
    def bytes_out(self) -> int:
        return self._out.bytes_out

    # -- producer side (the thread that reads the sources) ------------------------------------------
    def write(self, data: bytes) -> None:
        """Copy a piece into the current buffer; a full buffer goes to the compressor thread."""
        size = len(data)
        pos = self._pos
        if pos + size > BUFFER:
            self.flush_pending()
            if size > BUFFER:
                view = memoryview(data)
                for start in range(0, size, BUFFER):
                    self.write(view[start:start + BUFFER])
                return
            pos = 0
        self._current[pos:pos + size] = data
        self._pos = pos + size

    def flush_pending(self) -> None:
        """Hand the current buffer to the compressor thread."""
        if self._pos:
            self._put((self._current, self._pos))
            self._current = self.take_buffer()
            self._pos = 0

    def take_buffer(self) -> bytearray:
        """A BUFFER-sized buffer to read into; give it back with submit() or give_back()."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return bytearray(BUFFER)

    def submit(self, buffer: bytearray, length: int) -> None:
        """Compress buffer[:length] (after anything queued); the buffer returns to the pool afterwards."""
        self.flush_pending()
        self._put((buffer, length))

    def give_back(self, buffer: bytearray) -> None:
        self._free.put(buffer)

    def _put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._work.put(item)

    def close(self) -> str:
        """End the zstd frame, flush and fsync the file; returns the hex sha256 of everything written."""
        self.flush_pending()
        self._put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._out.file.flush()
        os.fsync(self._out.file.fileno())
        return self._out.sha.hexdigest()

    def abort(self) -> None:
        """Stop the compressor thread without finishing the frame."""
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            self._work.put(_END)
            self._thread.join()

    # -- the compressor thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (item := self._work.get()) is not _END:
                if self._error is not None:
                    continue        # aborted: drain until the end marker
                buffer, length = item
                with memoryview(buffer) as view:
                    self._zstd.write(view[:length])
                self._free.put(buffer)
            if self._error is None:
                self._zstd.flush(zstandard.FLUSH_FRAME)
                self._out.close()
        except BaseException as exc:    # handed to the producer on its next call
            self._error = exc
            while self._work.get() is not _END:
                pass
        finally:
            self._out.stop()
