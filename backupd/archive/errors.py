"""The archive's errors: its input (a source's file or stream) could not be read, or its output could not
be written. Sources raise SourceError too (sources.base re-exports it), so a run maps each to one category."""
from __future__ import annotations


class ArchiveError(Exception):
    """Writing an archive failed; the message names the path and what to do."""


class SourceError(ArchiveError):
    """A source could not be read; the message names the path or command and what to do."""


class WriteError(ArchiveError):
    """The archive (or its manifest) could not be written: a full disk, an I/O error."""
