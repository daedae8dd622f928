"""The archive's errors: its input (a source's file or stream) could not be read, or its output could not
be written. Sources raise SourceError too (sources.base re-exports it), so a run maps each to one category."""
from __future__ import annotations


class SourceError(Exception):
    """A source could not be read; the message names the path or command and what to do."""


class WriteError(OSError):
    """The archive (or its manifest) could not be written: a full disk, an I/O error. An OSError with the
    errno and the file name; `written` is what the archive held when it failed (bytes, when known)."""

    written: int | None = None

    @classmethod
    def of(cls, exc: OSError, filename) -> "WriteError":
        if isinstance(exc, WriteError):
            return exc
        return cls(exc.errno, exc.strerror or str(exc), str(filename) if filename is not None else None)
