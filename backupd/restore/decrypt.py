"""The hook for encrypted archives (`*.tar.zst.age`): the fetched byte stream, wrapped so that reading it
gives the decrypted tar.zst stream.

open_decrypted(stream, identity_path) takes the stored (encrypted) bytes as a file object or an iterable of
bytes and returns a file object or iterable of the plaintext tar.zst bytes; the restore and verify paths
hand its result to ArchiveReader. The recorded sha256 is of the stored file, so the caller hashes `stream`
itself (before decryption). Errors are RestoreError with a one-line message."""
from __future__ import annotations

import os
from typing import BinaryIO, Iterable

from .staging import RestoreError

ENCRYPTED_SUFFIX = ".age"


def is_encrypted(name: str) -> bool:
    """Whether an archive name is that of an encrypted archive."""
    return name.endswith(ENCRYPTED_SUFFIX)


def open_decrypted(stream: BinaryIO | Iterable[bytes], identity_path: os.PathLike | str):
    """The plaintext tar.zst stream of an age-encrypted `stream`, decrypted with the identity file."""
    raise RestoreError("encryption support not installed: cannot decrypt this archive")
