"""Names fixed by backupd's archive format, shared by every layer (the configuration refuses a source
named like the manifest, the archive writer appends it, a restore reads it)."""
from __future__ import annotations

MANIFEST_NAME = "MANIFEST.json"     # the last member of every archive
ARCHIVE_SUFFIX = ".tar.zst"
