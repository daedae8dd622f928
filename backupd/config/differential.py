"""A job's differential settings: when a new full is made, how changes are detected, which files are deltas.

A backup set is one full archive and differentials against that full (never a chain). The keys live on the
job (`differential`, `detect`, `delta_files`) and in its `full_every` table (`size`, `age`)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import fields as f
from .schema import key

DETECT_MODES = ("metadata", "content")
_PERCENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*")


@dataclass(frozen=True)
class FullSize:
    """A threshold on the set's differentials: a fraction of the full's size, or a number of bytes."""

    fraction: float | None = None
    bytes: int | None = None

    def limit(self, full_size: int) -> int:
        """The threshold in bytes for a full of `full_size` bytes."""
        return self.bytes if self.bytes is not None else int(full_size * self.fraction)

    def describe(self) -> str:
        return f"{self.fraction * 100:g}% of the full" if self.bytes is None else f"{self.bytes} bytes"


def full_size(value) -> FullSize:
    """'40%' of the full's size, or a size such as '2GiB'."""
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value)):
        percent = float(match.group(1))
        if not 0 < percent <= 1000:
            raise f.FieldError(f"must be a percentage above 0% and at most 1000%, not {f.shown(value)}")
        return FullSize(fraction=percent / 100)
    try:
        return FullSize(bytes=f.positive_size(value))
    except f.FieldError:
        raise f.FieldError(f"must be a percentage of the full's size like '40%' or a size like '2GiB', "
                           f"not {f.shown(value)}") from None


def globs(value) -> tuple[str, ...]:
    """Non-empty glob strings, matched against a member's path in its source and against its base name."""
    items = f.string_list(value)
    for item in items:
        if not item.strip():
            raise f.FieldError("must not hold an empty glob")
    return items


@dataclass(frozen=True)
class FullEvery:
    """The `full_every` table: the next run makes a new full once either limit is reached."""

    size: FullSize = key(full_size, FullSize(fraction=0.4),
                         doc="the set's newest differential reached this ('40%' of the full, or '2GiB')")
    age: float = key(f.duration, 7 * 86400.0, doc="the set's full is this old ('7d')")
