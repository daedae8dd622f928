"""UTC time as backupd writes it: ISO-8601 to the second with a `Z` suffix."""
from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    """`2024-05-01T03:00:00Z`; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """The inverse of iso() (also accepts `+00:00` offsets); empty or None gives None."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
