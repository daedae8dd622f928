"""Sizes for people: 1536 -> '1.5 KiB' (stdlib only: backupctl imports it at start-up)."""
from __future__ import annotations

UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(size: int | float | None) -> str:
    """Bytes in binary units with one decimal (whole bytes below 1 KiB); None (unknown) is '-'."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{int(size)} B"
    for unit in UNITS:
        size /= 1024
        if size < 1024 or unit == UNITS[-1]:
            break
    return f"{size:.1f} {unit}"
