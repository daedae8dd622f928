"""Reading backupd archives back: stream reader, safe extraction by directory descriptors, verification."""
from .check import VerifyReport, verify_archive
from .extract import RestoreSummary, extract_archive
from .feed import StoredBytes
from .reader import ArchiveError, ArchiveReader, Member
from .staging import RestoreError

__all__ = ["ArchiveError", "ArchiveReader", "Member", "RestoreError", "RestoreSummary", "StoredBytes",
           "VerifyReport", "extract_archive", "verify_archive"]
