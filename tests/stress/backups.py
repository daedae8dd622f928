"""What must hold of the stored backups after any fault: every successful run's archive is where its record
says, with its recorded sha256, and reads back with nothing but zstd and tar; nothing of backupd's own
temporary files is left in the spool or a local destination."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from backupd.util.names import ARCHIVE_SUFFIX

SIDECAR = ARCHIVE_SUFFIX + ".meta.json"
LOCK_FILE = ".backupd.lock"         # a local destination's store lock: backupd's, but no debris


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def spool_debris(spool: Path, waiting: set[str]) -> list[str]:
    """What is in the spool beyond the complete archives waiting for an upload (`waiting`)."""
    if not spool.exists():
        return []
    return sorted(p.name for p in spool.iterdir() if p.name not in waiting)


def destination_debris(root: Path) -> list[str]:
    """backupd's partial copies and sidecars without their archive in a local destination."""
    if not root.exists():
        return []
    names = {p.name for p in root.iterdir()}
    partial = [n for n in names if n.startswith(".partial-")]
    orphans = [n for n in names if n.endswith(SIDECAR) and n.removesuffix(".meta.json") not in names]
    return sorted(partial + orphans)


def foreign_files(root: Path) -> list[str]:
    """Files in a local destination that are neither an archive, its sidecar, nor the store lock."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir()
                  if not (p.name.endswith((ARCHIVE_SUFFIX, SIDECAR)) or p.name == LOCK_FILE))


def drive_archives(drive) -> dict[str, list[str]]:
    """Archive name -> the sha256 of each copy the loopback Drive holds (folders left out)."""
    found: dict[str, list[str]] = {}
    for item in drive.files.values():
        if item.content is not None and item.name.endswith(ARCHIVE_SUFFIX) and not item.trashed:
            found.setdefault(item.name, []).append(hashlib.sha256(item.content).hexdigest())
    return found


def unverified(records: list[dict], local_root: Path | None, drive=None,
               pruned: set[tuple[str, str]] = frozenset()) -> list[str]:
    """Each successful run whose archive is missing or differs from its record at a destination (`local`,
    `drive`), one line each; `pruned` holds the (archive, destination) removals the audit trail records."""
    on_drive = drive_archives(drive) if drive is not None else {}
    problems = []
    for record in records:
        if record["status"] != "success" or not record.get("archive"):
            continue
        name, sha = record["archive"]["name"], record["archive"]["sha256"]
        if local_root is not None and (name, "local") not in pruned:
            path = local_root / name
            if not path.exists() or sha256_of(path) != sha:
                problems.append(f"{record['run_id']}: local copy {name} missing or not its sha256")
        if drive is not None and (name, "drive") not in pruned and sha not in on_drive.get(name, []):
            problems.append(f"{record['run_id']}: Drive copy of {name} missing or not its sha256")
    return problems


def extract(archive: Path, into: Path) -> list[str]:
    """`zstd -dc archive | tar -x -C into`; the top-level names extracted (failing the test if either tool fails)."""
    into.mkdir(parents=True)
    zstd = subprocess.Popen(["zstd", "-dc", str(archive)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=zstd.stdout, capture_output=True)
    zstd.stdout.close()
    zstd_err = zstd.stderr.read()
    zstd.stderr.close()
    assert zstd.wait() == 0 and tar.returncode == 0, (zstd_err, tar.stderr)
    names = sorted(p.name for p in into.iterdir())
    shutil.rmtree(into)
    return names
