"""Member data hashed and written off the parsing thread.

The extracting thread parses headers, checks names and creates each file; a writer thread takes the data
from there: it hashes every member's data, writes an extracted file's data to its descriptor, sets its
attributes and closes it, and logs each member for the check against MANIFEST.json, all in archive order.
hashlib and os.write release the GIL on large buffers, so the two threads (and the decompressor) share
the cores. The data goes over in batches of about BATCH_BYTES (or BATCH_MEMBERS small members): the
pieces are views of the decompressed chunks, kept alive by the batch, so at most DEPTH batches are
waiting, and at most MAX_OPEN files are open (far below the usual limit of 1024 descriptors). A failure
in the writer is raised in the extracting thread at its next hand-over or at finish()."""
from __future__ import annotations

import hashlib
import os
import queue
import threading

from .check import ArchiveCheck
from .reader import ArchiveReader, Member
from .staging import apply_attributes

BATCH_BYTES = 1 << 20
BATCH_MEMBERS = 32
DEPTH = 4
MAX_OPEN = (DEPTH + 2) * BATCH_MEMBERS     # the batches waiting, the writer's and the one being filled
_END = None

# (member, descriptor or None, data pieces, attributes or None, the member's last entry); a member larger
# than a batch is split over entries of consecutive batches
Entry = tuple


class Sink:
    """Hands the members of one archive to the writer thread."""

    def __init__(self, check: ArchiveCheck) -> None:
        self._check = check
        self._batch: list[Entry] = []
        self._bytes = 0
        self._owned: set[int] = set()       # descriptors handed over and not yet closed by the writer
        self._queue: queue.Queue = queue.Queue(DEPTH)
        self._stopping = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="restore-writer", daemon=True)
        self._thread.start()

    def member(self, member: Member, reader: ArchiveReader, fd: int | None = None,
               attributes: tuple | None = None) -> None:
        """Hand over `member`, its data read from `reader`: hashed, written to `fd` when given (which is the
        sink's from now on: given `attributes` (mode, uid, gid, mtime_ns) and closed), then logged."""
        if fd is not None:
            self._owned.add(fd)
        pieces: list[memoryview] = []
        for piece in reader.chunks():
            pieces.append(piece)
            self._bytes += len(piece)
            if self._bytes >= BATCH_BYTES:
                self._batch.append((member, fd, pieces, None, False))
                pieces = []
                self.flush()
        self._batch.append((member, fd, pieces, attributes, True))
        if len(self._batch) >= BATCH_MEMBERS:
            self.flush()

    def flush(self) -> None:
        """Give the writer what was handed over; raises the writer's failure, if any."""
        if self.error is not None:
            raise self.error
        if self._batch:
            self._queue.put(self._batch)
            self._batch, self._bytes = [], 0

    def wait(self) -> None:
        """Until the writer has done everything handed over (raising its failure)."""
        self.flush()
        self._queue.join()
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Wait for the writer and stop it; raises its failure."""
        self.wait()
        self._stop()

    def abort(self) -> None:
        """Stop the writer where it is and close every descriptor it was given (after a failure)."""
        self._stopping = True
        self._batch = []
        self._stop()
        for fd in self._owned:
            os.close(fd)
        self._owned.clear()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()

    def _run(self) -> None:
        digest = None
        while (batch := self._queue.get()) is not _END:
            try:
                if not self._stopping and self.error is None:
                    for entry in batch:
                        digest = self._write(entry, digest)
            except BaseException as exc:        # raised in the extracting thread
                self.error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _write(self, entry: Entry, digest):
        member, fd, pieces, attributes, last = entry
        if digest is None:
            digest = hashlib.sha256()
        write = os.write
        for piece in pieces:
            digest.update(piece)
            if fd is not None:
                while piece:
                    piece = piece[write(fd, piece):]
        if not last:
            return digest
        member.sha256 = digest.hexdigest()
        if fd is not None:
            self._owned.discard(fd)             # before the number can be reused
            try:
                apply_attributes(fd, *attributes)
            finally:
                os.close(fd)
        self._check.record(member)
        return None
