"""A job's `keep` table: the retention policy as configured (jobs/retention.py decides what it keeps).

Each rule is a key declared once (schema.key), so the loader reports `At 'jobs.daily.keep.last': ...`;
constructing a KeepPolicy directly checks the same rules."""
from __future__ import annotations

from dataclasses import dataclass, fields

from . import fields as f
from .schema import key

PERIOD_RULES = ("hourly", "daily", "weekly", "monthly", "yearly")   # in the order describe() names them
_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """172800 -> '2d', 5400 -> '1h30m'; a fractional number of seconds stays in seconds ('0.5s')."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    parts, rest = [], int(seconds)
    for unit, size in _DURATION_UNITS:
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def count(value) -> int:
    """A rule's N: a whole number of at least 1 (the newest successful backup is kept whatever the rules)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise f.FieldError(f"must be a whole number of at least 1, not {f.type_name(value)}")
    if value < 1:
        raise f.FieldError(f"must be a whole number of at least 1, not {value} (leave the rule out to not use it; "
                           "the newest successful backup is always kept)")
    return value


def _period(name: str):
    return key(count, None, doc=f"the newest backup of each of the newest N {name}s that have one")


@dataclass(frozen=True)
class KeepPolicy:
    """A job's `keep` table; None means the rule is absent. `within` is in seconds."""

    last: int | None = key(count, None, doc="the N newest successful backups")
    hourly: int | None = _period("hour")
    daily: int | None = _period("day")
    weekly: int | None = _period("ISO week")
    monthly: int | None = _period("month")
    yearly: int | None = _period("year")
    within: float | None = key(f.duration, None, doc="every backup newer than this ('7d'), counted back from now")

    def __post_init__(self):
        for rule in fields(self):
            _check_rule(rule.name, getattr(self, rule.name))

    @property
    def empty(self) -> bool:
        """True when no rule is set: the policy keeps everything."""
        return all(getattr(self, rule.name) is None for rule in fields(self))

    def describe(self) -> str:
        """One line for --check-config: 'keep last 3, 7 daily, 4 weekly, everything within 2d'."""
        if self.empty:
            return "keep everything (no keep policy)"
        parts = [f"last {self.last}"] if self.last is not None else []
        parts += [f"{getattr(self, kind)} {kind}" for kind in PERIOD_RULES if getattr(self, kind) is not None]
        if self.within is not None:
            parts.append(f"everything within {format_duration(self.within)}")
        return "keep " + ", ".join(parts)


def _check_rule(name: str, value) -> None:
    if value is None:
        return
    if name == "within":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"keep.within must be a positive number of seconds, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"keep.{name} must be a whole number of at least 1, got {value!r}")
