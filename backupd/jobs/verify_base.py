"""What the verification of a differential adds: its manifest must name its full, and that full must be
the one recorded (or listed) for it, with the sha256 it was made against; `--against-source` samples the
complete state its manifest describes (files kept from the full and patched ones included), not only the
members it holds."""
from __future__ import annotations

from typing import BinaryIO

from ..restore.check import manifest_header, manifest_members
from ..util.names import DIFFERENTIAL
from .locate import Located


class ManifestSeen:
    """on_manifest for verify_archive: keeps the manifest's header; feeds `sampler` every file entry."""

    def __init__(self, sampler=None) -> None:
        self.sampler, self.header = sampler, {}

    def __call__(self, manifest: BinaryIO) -> None:
        self.header = manifest_header(manifest)
        if self.sampler is None:
            return
        for entry in manifest_members(manifest):
            if isinstance(entry, dict) and entry.get("type", "file") == "file" and isinstance(entry.get("name"), str):
                stat = entry.get("stat")
                mtime_ns = stat[3] if isinstance(stat, list) and len(stat) > 3 and type(stat[3]) is int else 0
                self.sampler.entry(entry["name"], entry.get("size", 0), entry.get("sha256", ""), mtime_ns)


def base_problems(found: Located, header: dict, destination: str) -> list[str]:
    """Problem lines of a differential's link to its full (none when its manifest could not be read)."""
    if not header:
        return []
    if header.get("kind") != DIFFERENTIAL:
        return [f"named as a differential, but its manifest says it is a {header.get('kind') or 'full'} backup"]
    base = header.get("base")
    if not (isinstance(base, dict) and isinstance(base.get("archive"), str) and isinstance(base.get("sha256"), str)):
        return ["its manifest does not name its full (base)"]
    if not found.base:
        return [f"its full {base['archive']} is not at {destination or 'the destination'}: it cannot be restored "
                "from there"]
    if base["archive"] != found.base:
        return [f"its manifest names the full {base['archive']}, the record {found.base}"]
    if found.base_sha256 and base["sha256"].lower() != found.base_sha256.lower():
        return [f"its full {found.base} has sha256 {found.base_sha256}, the differential was made against "
                f"{base['sha256']}"]
    return []


def named_base(header: dict) -> str:
    """The full a differential's manifest names ("" if none)."""
    base = header.get("base")
    return base["archive"] if isinstance(base, dict) and isinstance(base.get("archive"), str) else ""
