"""Value parsers for configuration keys: each returns the typed value or raises FieldError."""
from __future__ import annotations

import re
import zoneinfo
from pathlib import Path


class FieldError(ValueError):
    """A value that does not fit its key; the message says what was expected."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
               "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def _type_name(value) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def string(value) -> str:
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {_type_name(value)}")
    return value


def nonempty_string(value) -> str:
    if not string(value).strip():
        raise FieldError("must not be empty")
    return value


def path(value) -> Path:
    return Path(nonempty_string(value))


def credential_reference(value) -> Path | str:
    """A path (it has a '/'; relative ones resolve against the config file), or a bare name to look up
    in $CREDENTIALS_DIRECTORY (systemd LoadCredential=) first."""
    text = nonempty_string(value)
    return Path(text) if "/" in text else text


def boolean(value) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"must be true or false, not {_type_name(value)}")
    return value


def integer(low: int, high: int):
    def parse(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"must be an integer {low}-{high}, not {_type_name(value)}")
        if not low <= value <= high:
            raise FieldError(f"must be {low}-{high}, not {value}")
        return value
    return parse


def one_of(*choices: str):
    def parse(value) -> str:
        if value not in choices:
            raise FieldError(f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
        return value
    return parse


def duration(value) -> float:
    """'90s', '30m', '6h', '1d', or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise FieldError(f"must be a duration like '90s', '30m', '6h' or '1d', not {value!r}")
    if seconds <= 0:
        raise FieldError(f"must be a positive duration, not {value!r}")
    return seconds


def size(value) -> int:
    """'8MiB', '256KiB', '1GB', or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    raise FieldError(f"must be a size like '8MiB' or a number of bytes, not {value!r}")


def chunk_size(value) -> int:
    parsed = size(value)
    if parsed <= 0 or parsed % (256 * 1024):
        raise FieldError(f"must be a positive multiple of 256KiB, not {value!r}")
    return parsed


def string_list(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FieldError(f"must be a list of strings, not {_type_name(value)}")
    return tuple(value)


def argv(value) -> tuple[str, ...]:
    parsed = string_list(value)
    if not parsed or not parsed[0]:
        raise FieldError("must be a non-empty list: the program and its arguments (no shell)")
    return parsed


def member_name(value) -> str:
    """A file name inside the archive: no slashes, no dot-dot."""
    name = nonempty_string(value)
    if "/" in name or name in (".", ".."):
        raise FieldError(f"must be a plain file name, not {value!r}")
    return name


def timezone(value) -> str:
    name = nonempty_string(value)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FieldError(f"unknown time zone {value!r} (try 'UTC' or 'Europe/Berlin')") from None
    return name


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
                ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()
_CRON_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


def _cron_value(token: str, index: int) -> int:
    names = {3: _MONTHS, 4: _DAYS}.get(index)
    if names and token in names:
        return names.index(token) + (1 if index == 3 else 0)
    if not token.isdigit():
        raise FieldError(f"{_CRON_FIELDS[index][0]} field has {token!r}, not a number")
    return int(token)


def _cron_field(text: str, index: int) -> str:
    label, low, high = _CRON_FIELDS[index]
    out = []
    for item in text.lower().split(","):
        match = _CRON_ITEM.match(item)
        if not match:
            raise FieldError(f"{label} field {text!r} is not valid crontab syntax")
        span, step = match.groups()
        if step is not None and int(step) == 0:
            raise FieldError(f"{label} field {text!r} has a step of 0")
        bounds = [] if span == "*" else [_cron_value(t, index) for t in span.split("-")]
        for bound in bounds:
            if not low <= bound <= high:
                raise FieldError(f"{label} must be {low}-{high}, not {bound}")
        if index == 4 and (span, step) != ("*", None):  # crontab counts days from Sunday = 0 (or 7): by name
            first, last = (bounds[0], bounds[-1]) if bounds else (0, 6)
            days = range(first, last + 1, int(step or 1))
            out.extend(dict.fromkeys(_DAYS[day % 7] for day in days))
            continue
        out.append(span + (f"/{step}" if step else ""))
    return ",".join(out)


def crontab(value) -> str:
    """A 5-field crontab expression; returned normalised (days of week as names)."""
    fields = nonempty_string(value).split()
    if len(fields) != 5:
        raise FieldError(f"must have 5 fields (minute hour day month weekday), not {len(fields)}: {value!r}")
    return " ".join(_cron_field(text, index) for index, text in enumerate(fields))
