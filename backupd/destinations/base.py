"""The Destination protocol: where finished archives are kept.

Semantics every destination honours (checked by one contract suite, tests/destinations/contract.py):
- store(path, meta) puts the complete archive under meta.name, or nothing: a partial upload is never
  visible to list(). Storing a name that is already present with the same sha256 is a no-op success
  (idempotent), so a retried run never duplicates a backup.
- list(job) returns only backupd's own archives (never foreign files), newest first.
- fetch(name, out_path) writes the archive's exact bytes to out_path; fetch_stream(name) gives them in
  pieces as they arrive (DestinationError at once, before any byte, if the name is not there).
- delete(name) removes one archive; deleting a name that is absent is not an error (idempotent).
- Errors are DestinationError with a `kind`; `permanent` says whether retrying can help.
- `verb` says what store() does, for progress ("storing on" a disk, "uploading to" a remote service);
  `remote` whether asking it needs the network (at start the daemon asks one only about a killed run's
  archive no longer in the spool, and waits a few seconds at most).
- clean_debris() removes what an interrupted store left behind (backupd's own partial files, never
  anything else) and returns their names; store() cleans the same way first.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Callable, Iterator, Protocol

ProgressCallback = Callable[[int, int], None]   # (bytes done, bytes total)


class ErrorKind(StrEnum):
    """What kind of failure a DestinationError is (recorded with the run; decides what the operator does)."""
    AUTH = "auth"
    QUOTA = "quota"
    NOT_FOUND = "not-found"
    NETWORK = "network"
    VERIFY = "verify"
    IO = "io"
    CONFIG = "config"


class DestinationError(Exception):
    """A destination failed. `kind` is an ErrorKind; `permanent` is False when a later retry may work."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.IO, permanent: bool = True):
        super().__init__(message)
        self.kind = kind
        self.permanent = permanent


@dataclass(frozen=True)
class ArchiveMeta:
    """What a destination is told about the archive it stores."""

    name: str
    job: str
    run_id: str
    host: str
    size: int
    sha256: str
    created: str           # ISO-8601 UTC
    base: str = ""         # a differential's full (its archive name): without it there, it cannot be restored


@dataclass(frozen=True)
class StoredBackup:
    """One archive held by a destination."""

    name: str
    size: int
    location: str          # a path, or a Drive file id URI
    job: str = ""
    run_id: str = ""
    sha256: str = ""
    created: str = ""
    file_id: str = ""
    link: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value not in ("", {}, None)}


class Destination(Protocol):
    name: str
    verb: str       # "storing on" / "uploading to": the progress stage is f"{verb} {name}"
    remote: bool    # list() and store() need the network

    def store(self, archive: Path, meta: ArchiveMeta,
              progress: ProgressCallback | None = None) -> StoredBackup: ...
    def list(self, job: str | None = None) -> list[StoredBackup]: ...
    def fetch(self, name: str, out_path: Path) -> None: ...
    def fetch_stream(self, name: str) -> Iterator[bytes]: ...
    def delete(self, name: str) -> None: ...
    def clean_debris(self) -> list[str]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SetupCommand:
    """A command a destination type provides for its set-up (e.g. drive-login), run as
    `backupctl NAME ...` and `backupd NAME ...`; `target` is a lazy 'module:function' taking argv."""

    summary: str
    target: str
