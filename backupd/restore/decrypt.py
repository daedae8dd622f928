"""Encrypted archives (`*.tar.zst.age`, standard age v1): the fetched byte stream, wrapped so that reading it
gives the decrypted tar.zst stream.

open_decrypted(stream, identity_path) takes the stored (encrypted) bytes as a file object or an iterable of
bytes and returns a file object of the plaintext tar.zst bytes; the restore and verify paths hand it to
ArchiveReader. The recorded sha256 is of the stored file, so the caller hashes `stream` itself (before
decryption). Errors are RestoreError with a one-line message that never holds a key.

pyrage (the Rust age crate, as the archive was encrypted) decrypts in a thread of its own, handing plaintext
through a short channel. The identity file is read here line by line (pyrage takes one bare key at a time:
comments and blank lines are skipped, each line checked). age authenticates every 64 KiB chunk, but a damaged
or cut archive is found only where the damage is, after the plaintext before it was handed out: read()
raises instead of ending, so the reader must throw away what it read (the restore stages into a folder that
it removes), and nothing is ever taken for complete before the end was authenticated."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO, Iterable

from ..archive.encrypt import MAGIC
from ..archive.pipeline import END, Pipeline, Stopped
from ..config.recipients import FieldError, bech32_payload
from .staging import RestoreError

ENCRYPTED_SUFFIX = ".age"
CHUNK = 1 << 20
DEPTH = 16                          # plaintext pieces (64 KiB each) waiting for the reader
MAX_IDENTITY_FILE = 64 << 10
_SECRET_PREFIX = "AGE-SECRET-KEY-1"
# a phrase of pyrage's error -> what it means here
_AGE_ERRORS = (
    ("No matching keys", "no identity in {key} matches the archive's recipients (a wrong key?)"),
    ("decryption error", "the encrypted data is damaged or cut short (authentication failed)"),
    ("truncated", "the encrypted data is cut short"),
    ("Incomplete header", "the archive's age header is cut short"),
    ("fill whole buffer", "the archive is empty or cut short in its age header"),
    ("Header is invalid", "the archive is not age-encrypted (or its header is damaged)"),
    ("MAC", "the archive's age header is damaged"),
)


class NoMatchingIdentity(RestoreError):
    """The identities open none of the archive's recipient stanzas: nothing past its header was read."""


def is_encrypted(name: str) -> bool:
    """Whether an archive name is that of an encrypted archive."""
    return name.endswith(ENCRYPTED_SUFFIX)


def looks_encrypted(first_bytes: bytes) -> bool:
    """Whether the stored bytes start like an age v1 file."""
    return first_bytes.startswith(MAGIC)


def read_identities(path: Path) -> list:
    """pyrage's identities from an age identity file (AGE-SECRET-KEY-1... lines; comments and blank lines
    skipped) or an unprotected ssh private key file; RestoreError naming the line that is wrong."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_IDENTITY_FILE + 1)
    except OSError as exc:
        raise RestoreError(f"cannot read the identity file {path}: {exc.strerror}") from None
    if len(data) > MAX_IDENTITY_FILE:
        raise RestoreError(f"{path} is too large to be an identity file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise RestoreError(f"{path} is not an identity file (not text)") from None
    if text.lstrip().startswith("-----BEGIN") and "PRIVATE KEY-----" in text:
        return [_ssh_identity(data, path)]
    keys = [_identity_line(line.strip(), path, number) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise RestoreError(f"{path} holds no identity (AGE-SECRET-KEY-1... or an ssh private key)")
    return keys


def _ssh_identity(data: bytes, path: Path):
    import pyrage
    try:
        return pyrage.ssh.Identity.from_buffer(data)
    except pyrage.IdentityError as exc:
        if "decrypted first" in str(exc):
            raise RestoreError(f"{path} is protected by a passphrase: decrypt with `age -d -i {path}`, which asks "
                               "for it, or use a copy without one (ssh-keygen -p -N '' -f COPY)") from None
        raise RestoreError(f"{path} is not an ssh private key age can use: {exc}") from None


def _identity_line(line: str, path: Path, number: int):
    import pyrage
    where = f"{path} line {number}"
    if line.startswith("age1") or line.startswith("ssh-"):
        raise RestoreError(f"{where}: a public key; decrypting needs the secret key (AGE-SECRET-KEY-1...)")
    if not line.startswith(_SECRET_PREFIX):
        raise RestoreError(f"{where}: not an age identity (AGE-SECRET-KEY-1...)")
    try:
        if len(bech32_payload(line.lower())) != 32:
            raise FieldError("does not hold a 32-byte key")
        return pyrage.x25519.Identity.from_str(line)
    except (FieldError, pyrage.IdentityError) as exc:
        raise RestoreError(f"{where}: a damaged age identity: {exc}") from None


def open_decrypted(stream: BinaryIO | Iterable[bytes], identity_path: os.PathLike | str) -> "DecryptedStream":
    """The plaintext tar.zst stream of an age-encrypted `stream`, decrypted with the identity file."""
    path = Path(identity_path)
    return DecryptedStream(stream, read_identities(path), str(path))


class _Encrypted:
    """What pyrage reads: `stream` (a file object or an iterable of bytes); its own errors are kept apart."""

    def __init__(self, stream, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._read = stream.read if hasattr(stream, "read") else None
        self._pieces = None if self._read else iter(stream)
        self._pending = memoryview(b"")
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        self._pipeline.check()              # closed by the reader: stop here
        try:
            if self._read is not None:
                return self._read(size)
            while not self._pending:
                piece = next(self._pieces, None)
                if piece is None:
                    return b""
                self._pending = memoryview(piece)
        except BaseException as exc:
            self.error = exc
            raise
        size = len(self._pending) if size is None or size < 0 else size
        data, self._pending = bytes(self._pending[:size]), self._pending[size:]
        return data


class _Plaintext:
    """Where pyrage writes: each piece into the channel to the reader."""

    def __init__(self, channel) -> None:
        self._channel = channel

    def write(self, data) -> int:
        self._channel.put(bytes(data))
        return len(data)


class DecryptedStream:
    """The plaintext of an encrypted stream, read(); the end comes only once the whole input was
    authenticated, otherwise read() raises RestoreError (or the input's own error). close() ends it early."""

    def __init__(self, stream, identities: list, shown_key: str) -> None:
        self._shown_key = shown_key
        self._pipeline = Pipeline()
        self._channel = self._pipeline.channel(DEPTH)
        self._input = _Encrypted(stream, self._pipeline)
        self._pending = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._decrypt, args=(identities,), name="restore-decrypt",
                                        daemon=True)
        self._thread.start()

    def _decrypt(self, identities: list) -> None:
        import pyrage
        try:
            pyrage.decrypt_io(self._input, _Plaintext(self._channel), identities)
            self._pipeline.check()          # what pyrage may have dropped
            self._channel.put(END)
        except Stopped:
            pass
        except BaseException as exc:        # handed to the reader
            self._pipeline.fail(self._input.error or self._failure(exc))

    def _failure(self, exc: BaseException) -> BaseException:
        import pyrage
        if not isinstance(exc, (pyrage.DecryptError, OSError)):
            return exc
        text = " ".join(str(exc).split()) or type(exc).__name__
        phrase, meaning = next(((phrase, meaning) for phrase, meaning in _AGE_ERRORS if phrase in text),
                               ("", f"age: {text[:200]}"))
        error = NoMatchingIdentity if phrase == _AGE_ERRORS[0][0] else RestoreError
        return error(f"cannot decrypt: {meaning.format(key=self._shown_key)}")

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes; b"" only at the authenticated end. After a failure every read raises it."""
        while not self._pending:
            if self._done:
                self._pipeline.check()
                return b""
            try:
                item = self._channel.get()
            except Stopped:
                self._end()
                raise self._pipeline.error from None
            if item is END:
                self._end()
                return b""
            self._pending = memoryview(item)
        size = len(self._pending) if size is None or size < 0 else size
        data, self._pending = bytes(self._pending[:size]), self._pending[size:]
        return data

    def _end(self) -> None:
        self._done = True
        self._thread.join()

    def close(self) -> None:
        """Stop decrypting; nothing more is read from the input."""
        if not self._done:
            self._pipeline.fail(RestoreError("the decryption was closed before its end"))
            self._end()

    def __enter__(self) -> "DecryptedStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
