"""Encryption while the archive is written: zstd's output -> age -> the writer, so no plaintext reaches the disk.

The stored file is standard age v1 (`age -d -i KEY FILE | zstd -dc | tar -x` restores it). The encryption is
pyrage's (bindings to the Rust age crate): bench/encryption_bench.py measured it inside this pipeline against
the `age` program as a child process; pyrage added a third to half of the CPU time the child did (no pipes
to copy every byte through, no second process), and on two cores that zstd's workers already keep busy the
wall time follows the CPU time.

pyrage.encrypt_io(reader, writer, recipients) runs in the encryptor's own thread: it pulls zstd's output with
read(8192) and pushes 65,552-byte write()s. It holds the interpreter's lock while it encrypts (about 50 us per
write), and it drops whatever the final write() raises; so the writer here does no I/O: it only copies into
pooled buffers for the writer stage, which reports its own errors through the pipeline, and the pipeline is
checked once encrypt_io returned.
"""
from __future__ import annotations

import queue
import threading

from .pipeline import END, Channel, Pipeline, Stopped

MAGIC = b"age-encryption.org/v1\n"      # how every age v1 file starts


class EncryptError(Exception):
    """Encryption could not start or failed; the message is one line and never holds a key."""


def parse_recipients(texts) -> list:
    """pyrage's recipient objects for the configured public keys (already checked by the configuration)."""
    import pyrage
    out = []
    for index, text in enumerate(texts):
        kind = pyrage.ssh if text.startswith("ssh-") else pyrage.x25519
        try:
            out.append(kind.Recipient.from_str(text))
        except (pyrage.RecipientError, ValueError) as exc:
            raise EncryptError(f"recipient [{index}] cannot be used: {exc}") from None
    return out


class _Plaintext:
    """What pyrage reads: the compressor's (buffer, length) items; each buffer goes back to the pool once read."""

    def __init__(self, inbox: Channel, pool: queue.Queue) -> None:
        self._inbox, self._pool = inbox, pool
        self._buffer, self._view, self._pos, self._ended = None, memoryview(b""), 0, False

    def read(self, size: int = -1) -> bytes:
        while self._pos >= len(self._view):
            if self._ended or not self._next():
                return b""
        end = len(self._view) if size is None or size < 0 else self._pos + size
        data = bytes(self._view[self._pos:end])
        self._pos += len(data)
        return data

    def _next(self) -> bool:
        if self._buffer is not None:
            self._view.release()
            self._pool.put(self._buffer)
            self._buffer = None
        item = self._inbox.get()        # Stopped once the pipeline failed
        if item is END:
            self._ended = True
            return False
        self._buffer, length = item
        self._view, self._pos = memoryview(self._buffer)[:length], 0
        return True


class _Ciphertext:
    """Where pyrage writes: gathered into pooled buffers for the writer stage; never any I/O."""

    def __init__(self, outbox: Channel, pool: queue.Queue, size: int) -> None:
        self._outbox, self._pool, self._size = outbox, pool, size
        self._current, self._pos = self._take(), 0

    def _take(self) -> bytearray:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return bytearray(self._size)

    def write(self, data) -> int:
        size = len(data)
        if self._pos + size > self._size:
            self.hand_over()
        self._current[self._pos:self._pos + size] = data
        self._pos += size
        return size

    def hand_over(self) -> None:
        """Pass the gathered output to the writer stage (raises the pipeline's error if it failed)."""
        if self._pos:
            self._outbox.put((self._current, self._pos))
            self._current, self._pos = self._take(), 0


class AgeEncryptor:
    """The encryptor stage of the archive's pipeline (between the compressor and the writer): everything
    passing through is encrypted to `recipients` (public keys as the configuration checked them)."""

    def __init__(self, recipients) -> None:
        if not recipients:
            raise ValueError("AgeEncryptor needs at least one recipient")
        self.recipients = tuple(recipients)
        self._parsed = parse_recipients(self.recipients)
        self._thread: threading.Thread | None = None

    def attach(self, pipeline: Pipeline, inbox: Channel, outbox: Channel, pool: queue.Queue,
               buffer_size: int) -> None:
        """Start the stage: (buffer, length) items of `inbox` go encrypted, as (buffer, length) items, into
        `outbox`, then END; buffers are taken from `pool` and given back to it."""
        self._thread = threading.Thread(target=self._run, args=(pipeline, inbox, outbox, pool, buffer_size),
                                        name="archive-encryptor", daemon=True)
        self._thread.start()

    def _run(self, pipeline: Pipeline, inbox: Channel, outbox: Channel, pool: queue.Queue, size: int) -> None:
        import pyrage
        try:
            output = _Ciphertext(outbox, pool, size)
            pyrage.encrypt_io(_Plaintext(inbox, pool), output, self._parsed)
            pipeline.check()            # what pyrage dropped (a failed last write, a stop) is still there
            output.hand_over()
            outbox.put(END)
        except Stopped:
            pass
        except pyrage.EncryptError as exc:
            pipeline.fail(EncryptError(f"age: {exc}"))
        except BaseException as exc:    # ends the whole pipeline; the producer raises it
            pipeline.fail(exc)

    def stop(self) -> None:
        """Wait for the stage's thread (it ends at END, or at once after a failure)."""
        if self._thread is not None:
            self._thread.join()
