"""Names fixed by backupd's archive format, shared by every layer (the configuration refuses a source
named like the manifest, the archive writer appends it, a restore reads it)."""
from __future__ import annotations

import re

MANIFEST_NAME = "MANIFEST.json"     # the last member of every archive
ARCHIVE_SUFFIX = ".tar.zst"
ENCRYPTED_SUFFIX = ARCHIVE_SUFFIX + ".age"     # an archive encrypted to the job's encrypt_to (age v1)
ARCHIVE_SUFFIXES = (ARCHIVE_SUFFIX, ENCRYPTED_SUFFIX)
DELTA_DIR = ".backupd-delta"        # a differential's delta files' changed ranges, at the archive's top
DELTA_SUFFIX = "@"                  # DELTA_DIR/<member path>@<offset>: the bytes to write there
DIFF_MARK = "-diff-"                # <job>-<host>-<stamp>-<run8>-diff-<base run8>: a differential's name
FULL, DIFFERENTIAL = "full", "differential"     # a backup's kind (manifest, record, listing)
_RUN_IN_NAME = re.compile(r"-([0-9a-f]{1,8})(?:-diff-[0-9a-f]{1,12})?\.tar\.zst(?:\.age)?$")
_DIFF_NAME = re.compile(r"-diff-([0-9a-f]{1,12})(?:\.tar\.zst(?:\.age)?)?$")


def archive_suffix(encrypted: bool) -> str:
    return ENCRYPTED_SUFFIX if encrypted else ARCHIVE_SUFFIX


def base_run_of(name: str) -> str | None:
    """The run id prefix of a differential's full, from the differential's archive name; None: a full."""
    match = _DIFF_NAME.search(name)
    return match.group(1) if match else None


def kind_of(name: str) -> str:
    """'full' or 'differential', from an archive name."""
    return FULL if base_run_of(name) is None else DIFFERENTIAL


def run_in_name(name: str) -> str:
    """The run id prefix an archive's name carries ("" if it carries none)."""
    match = _RUN_IN_NAME.search(name)
    return match.group(1) if match else ""


def fulls_of(name: str, fulls) -> list[str]:
    """The names, among `fulls` [(name, run id or "")], of the fulls the differential `name` may belong to (the
    run id, else the one in the full's name, starts with the differential's base run); [] for a full."""
    base_run = base_run_of(name)
    if base_run is None:
        return []
    return sorted(full for full, run_id in fulls if (run_id or run_in_name(full)).startswith(base_run))
