"""Reading backupd archives back: stream reader, safe extraction by directory descriptors, verification."""
from .check import VerifyReport, verify_archive
from .extract import RestoreSummary
from .feed import StoredBytes
from .reader import ArchiveError, ArchiveReader, Member
from .session import StagedRestore, extract_archive, restore_set
from .staging import RestoreError

__all__ = ["ArchiveError", "ArchiveReader", "Member", "RestoreError", "RestoreSummary", "StoredBytes",
           "StagedRestore", "VerifyReport", "extract_archive", "restore_set", "verify_archive"]
