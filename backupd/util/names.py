"""Names fixed by backupd's archive format, shared by every layer (the configuration refuses a source
named like the manifest, the archive writer appends it, a restore reads it)."""
from __future__ import annotations

MANIFEST_NAME = "MANIFEST.json"     # the last member of every archive
ARCHIVE_SUFFIX = ".tar.zst"
ENCRYPTED_SUFFIX = ARCHIVE_SUFFIX + ".age"     # an archive encrypted to the job's encrypt_to (age v1)
ARCHIVE_SUFFIXES = (ARCHIVE_SUFFIX, ENCRYPTED_SUFFIX)


def archive_suffix(encrypted: bool) -> str:
    return ENCRYPTED_SUFFIX if encrypted else ARCHIVE_SUFFIX
