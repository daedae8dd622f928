"""The decompressed byte stream of an archive: a thread reads the compressed input, hashes it and runs zstd
(both release the GIL), handing decompressed chunks to the reading thread through a short queue."""
from __future__ import annotations

import hashlib
import queue
import threading
from typing import Callable, Iterable, Iterator

import zstandard

from .tarparse import ArchiveError

CHUNK = 1 << 20                 # compressed bytes per read, and decompressed bytes per chunk
DEPTH = 4                       # decompressed chunks waiting for the reading thread
_END = b""


class HashingInput:
    """The compressed input (a file object or an iterable of bytes) as zstd reads it: counted, and hashed
    unless `hashed` is False (the caller hashes the stored bytes itself)."""

    def __init__(self, source, progress: Callable[[int], None] | None, hashed: bool = True) -> None:
        self.sha = hashlib.sha256()
        self.count = 0
        self._hashed = hashed
        self._progress = progress
        self._pending = memoryview(b"")
        self._chunks = None if hasattr(source, "read") else iter(source)
        self._read = source.read if self._chunks is None else self._next_chunk

    def _next_chunk(self, size: int) -> memoryview:
        """Up to `size` bytes of the pieces, sliced without copying."""
        data = self._pending
        while not data:
            if (piece := next(self._chunks, None)) is None:
                return data
            data = memoryview(piece)
        size = len(data) if size < 0 else size
        self._pending = data[size:]
        return data[:size]

    def read(self, size: int = -1) -> bytes | memoryview:
        data = self._read(size)
        if data:
            if self._hashed:
                self.sha.update(data)
            self.count += len(data)
            if self._progress is not None:
                self._progress(self.count)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever is left."""
        while self.read(CHUNK):
            pass


class Feeder:
    """Decompressed chunks of `source`, produced ahead by a thread; next() returns b'' at the end and
    raises what the thread met (ArchiveError for bad zstd data, the source's own OSError)."""

    def __init__(self, source, progress: Callable[[int], None] | None = None, hash_input: bool = True) -> None:
        self.input = HashingInput(source, progress, hash_input)
        self._queue: queue.Queue = queue.Queue(DEPTH)
        self._stopping = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name="restore-decompressor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(
                self.input, read_size=CHUNK, read_across_frames=True, closefd=False)
            while not self._stopping and (data := reader.read(CHUNK)):
                self._queue.put(data)
            if not self._stopping:
                self.input.drain()
            self._queue.put(_END)
        except zstandard.ZstdError as exc:
            self._finish_input()
            self._queue.put(ArchiveError(f"corrupt archive: zstd: {exc}"))
        except BaseException as exc:        # handed to the reading thread
            self._queue.put(exc)

    def _finish_input(self) -> None:
        """Hash the rest of a corrupt input, so its sha256 can still be compared with the record."""
        try:
            if not self._stopping:
                self.input.drain()
        except OSError:
            pass

    def next(self) -> bytes:
        if self._done:
            return _END
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item is _END or not item:
            self._done = True
        return item

    def drain(self) -> None:
        """Let the thread read (and hash) everything, discarding the chunks; errors end it quietly."""
        try:
            while self.next():
                pass
        except (ArchiveError, OSError):
            pass

    def close(self) -> None:
        """Stop the thread where it is (the input is not read further); next() then gives the end."""
        self._stopping = True
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()
        self._done = True           # what was queued is gone: a later drain() must not wait for it


class StoredBytes:
    """An archive's stored bytes (an iterable of bytes) as they arrive, hashed before anything decodes them:
    the record's sha256 is of these, an encrypted archive's too. `digest`: a hashlib object the source
    updates with the same bytes itself (the daemon's stream checks them), so they are not hashed twice."""

    def __init__(self, chunks: Iterable[bytes], digest=None) -> None:
        self._chunks = iter(chunks)
        self._own = digest is None
        self._sha = hashlib.sha256() if digest is None else digest

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._own:
                self._sha.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def drain(self) -> None:
        """Read (and hash) the rest, once nothing else reads from it."""
        for chunk in self._chunks:
            if self._own:
                self._sha.update(chunk)
