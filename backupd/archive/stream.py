"""The compressed output: coalesces small writes; a compressor thread feeds zstd's worker threads and a
writer thread hashes and writes its output, so the reading thread never waits for compression or the disk."""
from __future__ import annotations

import hashlib
import os
import queue

import zstandard

from .errors import WriteError
from .pipeline import END, Channel, Pipeline

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


def _stage_write_error(stage: str, exc: BaseException, file) -> BaseException:
    """A stage's OSError (zstd's write or end-of-frame flush, ...) is the archive's WriteError naming the
    stage and the archive file, so it is never taken for a source's read error or an unexpected one."""
    if not isinstance(exc, OSError) or isinstance(exc, WriteError):
        return exc
    error = WriteError(exc.errno, f"{exc.strerror or exc} (in the {stage} stage)", getattr(file, "name", None))
    error.__cause__ = exc
    return error


class _Writer:
    """The last stage: hashes each piece of zstd's output (hashlib releases the GIL on large buffers), writes
    it to the file and starts its writeback to disk; its errors are WriteErrors naming the file."""

    def __init__(self, file, free: queue.Queue) -> None:
        self.file, self.sha, self.bytes_out = file, hashlib.sha256(), 0
        self._free, self._synced = free, 0
        self._start_writeback = _writeback_starter(file)

    def write_piece(self, item) -> None:
        buffer, length = item
        try:
            with memoryview(buffer) as view:
                piece = view[:length]
                self.sha.update(piece)
                _write_all(self.file, piece)
                piece.release()
        except OSError as exc:
            raise WriteError.of(exc, getattr(self.file, "name", None)) from exc
        self.bytes_out += length
        if self.bytes_out - self._synced >= WRITEBACK:
            self._start_writeback(self._synced, self.bytes_out - self._synced)
            self._synced = self.bytes_out
        self._free.put(buffer)


class _Gatherer:
    """Where zstd writes its output (in the compressor thread): gathered into OUT_BUFFER pieces for the writer."""

    def __init__(self, outbox: Channel, free: queue.Queue) -> None:
        self._outbox, self._free = outbox, free
        self._current = bytearray(OUT_BUFFER)
        self._pos = 0

    def write(self, data) -> int:
        """Called by zstd with at most OUT_CHUNK bytes."""
        size, pos = len(data), self._pos
        if pos + size > OUT_BUFFER:
            self.hand_over()
            pos = 0
        self._current[pos:pos + size] = data
        self._pos = pos + size
        return size

    def hand_over(self) -> None:
        """Pass the gathered output to the writer stage (raises the pipeline's error if it failed)."""
        if self._pos:
            self._outbox.put((self._current, self._pos))
            try:
                self._current = self._free.get_nowait()
            except queue.Empty:
                self._current = bytearray(OUT_BUFFER)
            self._pos = 0


class CompressedStream:
    """Bytes in, one zstd frame out to `file`; tracks bytes out and the sha256 of the output.

    A pipeline: the producer (the thread reading the sources) -> the compressor stage (feeds zstd's worker
    threads) -> the writer stage. An error in any of them ends all of them and reaches the producer.
    Memory is fixed: pieces are copied into pooled BUFFER-sized bytearrays (at most DEPTH + 2 exist)
    and zstd hands its output over in OUT_CHUNK pieces, so no large object is allocated per piece."""

    def __init__(self, file, level: int, threads: int = -1, encryptor=None) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=JOB_SIZE)
        self._pipeline = Pipeline(stage_error=lambda stage, exc: _stage_write_error(stage, exc, file))
        self._free: queue.Queue = queue.Queue()
        out_free: queue.Queue = queue.Queue()
        to_compressor, to_writer = self._pipeline.channel(DEPTH), self._pipeline.channel(OUT_DEPTH)
        # with an encryptor (encrypt.AgeEncryptor): compressor -> encryptor -> writer
        compressed = to_writer if encryptor is None else self._pipeline.channel(OUT_DEPTH)
        self._encryptor = encryptor
        self._out = _Writer(file, out_free)
        self._gatherer = _Gatherer(compressed, out_free)
        self._zstd = zstandard.ZstdCompressor(compression_params=params).stream_writer(
            self._gatherer, write_size=OUT_CHUNK, closefd=False)
        self._inbox = to_compressor
        self._current = bytearray(BUFFER)
        self._pos = 0
        self._pipeline.stage("archive-compressor", to_compressor, self._compress, self._end_frame, compressed)
        self._pipeline.stage("archive-writer", to_writer, self._out.write_piece)
        if encryptor is not None:
            try:
                encryptor.attach(self._pipeline, compressed, to_writer, out_free, OUT_BUFFER)
            except BaseException as exc:
                self._pipeline.fail(exc)        # the other stages end
                raise

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
            self._inbox.put((self._current, self._pos))
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
        self._inbox.put((buffer, length))

    def give_back(self, buffer: bytearray) -> None:
        self._free.put(buffer)

    def close(self) -> str:
        """End the zstd frame, flush and fsync the file; returns the hex sha256 of everything written."""
        self.flush_pending()
        self._inbox.put(END)
        try:
            self._pipeline.join()
        finally:
            self._stop_encryptor()
        file = self._out.file
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise WriteError.of(exc, getattr(file, "name", None)) from exc
        return self._out.sha.hexdigest()

    def abort(self) -> None:
        """Stop every stage without finishing the frame (a no-op once they ended)."""
        self._pipeline.fail(Aborted("the archive was abandoned"))
        try:
            self._pipeline.join()
        except BaseException:
            pass
        self._stop_encryptor()

    def _stop_encryptor(self) -> None:
        if self._encryptor is not None:
            self._encryptor.stop()

    # -- the compressor stage ---------------------------------------------------------------------------
    def _compress(self, item) -> None:
        buffer, length = item
        with memoryview(buffer) as view:
            self._zstd.write(view[:length])
        self._free.put(buffer)

    def _end_frame(self) -> None:
        self._zstd.flush(zstandard.FLUSH_FRAME)
        self._gatherer.hand_over()


class Aborted(Exception):
    """The producer gave up on the archive (its own error, or a cancel)."""
