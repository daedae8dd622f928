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


_AGE_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def human_age(seconds: float | None) -> str:
    """An elapsed time in its two largest units: 45 -> '45s', 11520 -> '3h12m', 100800 -> '1d4h', 259200 -> '3d'."""
    if seconds is None:
        return "-"
    rest = max(0, int(seconds))
    for (unit, size), (next_unit, next_size) in zip(_AGE_UNITS, _AGE_UNITS[1:] + ((None, 1),)):
        if rest >= size or next_unit is None:
            below = rest % size // next_size if next_unit else 0
            return f"{rest // size}{unit}" + (f"{below}{next_unit}" if below else "")
    return "0s"
