"""Value parsers for configuration keys: each returns the typed value or raises FieldError."""
from __future__ import annotations

import difflib
import math
import re
import zoneinfo
from pathlib import Path


class FieldError(ValueError):
    """A value that does not fit its key; the message says what was expected."""


SHOWN = 80                        # characters of a bad value an error message repeats
MAX_DURATION = 3650 * 86400.0     # 10 years: beyond any sane timeout, far inside what timers and datetimes hold
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
               "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def shown(value) -> str:
    """repr(value) for an error message, cut to about SHOWN characters."""
    return _cut(repr(value))


def label(name: str) -> str:
    """A key or table name as it goes into "At '...'": control characters escaped, cut like a value."""
    return _cut(name if name.isprintable() else repr(name)[1:-1])


def did_you_mean(word: str, choices, otherwise: str = "") -> str:
    """"; did you mean 'x'?" for the closest of `choices`, or `otherwise` when none is close."""
    hint = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{label(hint[0])}'?" if hint else otherwise


def type_name(value) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def string(value) -> str:
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {type_name(value)}")
    if "\0" in value:
        raise FieldError(f"must not contain a NUL byte: {shown(value)}")
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
        raise FieldError(f"must be true or false, not {type_name(value)}")
    return value


def integer(low: int, high: int):
    def parse(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"must be an integer {low}-{high}, not {type_name(value)}")
        if not low <= value <= high:
            raise FieldError(f"must be {low}-{high}, not {shown(value)}")
        return value
    return parse


def one_of(*choices: str):
    def parse(value) -> str:
        if value not in choices:
            raise FieldError(f"must be one of {', '.join(repr(c) for c in choices)}, not {shown(value)}")
        return value
    return parse


def duration(value) -> float:
    """'90s', '30m', '6h', '1d', or a number of seconds: positive, finite, at most MAX_DURATION."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise FieldError(f"must be a duration like '90s', '30m', '6h' or '1d', not {shown(value)}")
    if not math.isfinite(seconds):
        raise FieldError(f"must be a finite duration, not {shown(value)}")
    if seconds <= 0:
        raise FieldError(f"must be a positive duration, not {shown(value)}")
    if seconds > MAX_DURATION:
        raise FieldError(f"must be at most {MAX_DURATION / 86400:.0f}d, not {shown(value)}")
    return seconds


def duration_from(low: float, text: str):
    """A duration of at least `low` seconds (written `text` in the message)."""
    def parse(value) -> float:
        seconds = duration(value)
        if seconds < low:
            raise FieldError(f"must be at least {text}, not {shown(value)}")
        return seconds
    return parse


def size(value) -> int:
    """'8MiB', '256KiB', '1GB', or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    raise FieldError(f"must be a size like '8MiB' or a number of bytes, not {shown(value)}")


def chunk_size(value) -> int:
    parsed = size(value)
    if parsed <= 0 or parsed % (256 * 1024):
        raise FieldError(f"must be a positive multiple of 256KiB, not {shown(value)}")
    return parsed


def positive_size(value) -> int:
    parsed = size(value)
    if parsed <= 0:
        raise FieldError(f"must be a positive size like '10GiB', not {shown(value)}")
    return parsed


MIN_RATE = 1 << 10                # bytes a second: a bandwidth limit below 1 KiB/s is a typo, not a limit


def rate(value) -> int:
    """'20MiB/s', '500KiB/s', '10MB/s': bytes a second, at least MIN_RATE."""
    text = value.strip() if isinstance(value, str) else ""
    match = _SIZE.match(text.removesuffix("/s")) if text.endswith("/s") else None
    if match is None:
        raise FieldError(f"must be a rate like '20MiB/s' or '500KiB/s', not {shown(value)}")
    parsed = float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if not MIN_RATE <= parsed < 2 ** 63:
        raise FieldError(f"must be at least 1KiB/s (and below 8EiB/s), not {shown(value)}")
    return int(parsed)


def string_list(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FieldError(f"must be a list of strings, not {type_name(value)}")
    return tuple(string(item) for item in value)


def argv(value) -> tuple[str, ...]:
    parsed = string_list(value)
    if not parsed or not parsed[0]:
        raise FieldError("must be a non-empty list: the program and its arguments (no shell)")
    return parsed


def member_name(value) -> str:
    """A file name inside the archive: no slashes, no dot-dot."""
    name = nonempty_string(value)
    if "/" in name or name in (".", ".."):
        raise FieldError(f"must be a plain file name, not {shown(value)}")
    return name


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def import_string(value) -> str:
    """'package.module:attribute' (the attribute may be dotted: 'module:Class.create')."""
    text = nonempty_string(value)
    module, colon, attribute = text.partition(":")
    parts = module.split(".") + attribute.split(".")
    if not colon or not all(part.isidentifier() for part in parts):
        raise FieldError(f"must be an import string like 'myapp.state:State', not {shown(value)}")
    return text


def identifier(value) -> str:
    """A Python name, such as a method's."""
    if not string(value).isidentifier():
        raise FieldError(f"must be a Python name like 'dump', not {shown(value)}")
    return value


def absolute_paths(value) -> tuple[Path, ...]:
    """A list of absolute paths."""
    parsed = [Path(item) for item in string_list(value)]
    relative = [str(item) for item in parsed if not item.is_absolute()]
    if relative:
        raise FieldError(f"must hold absolute paths, not {shown(relative[0])}")
    return tuple(parsed)


def environment(value) -> tuple[tuple[str, str], ...]:
    """A table of environment variables, NAME = "value", as (name, value) pairs (a frozen config holds no dict)."""
    if not isinstance(value, dict):
        raise FieldError(f"must be a table of NAME = \"value\", not {type_name(value)}")
    for name, text in value.items():
        if not _ENV_NAME.fullmatch(name):
            raise FieldError(f"{shown(name)} is not an environment variable name (letters, digits, '_')")
        if not isinstance(text, str) or "\0" in text:
            raise FieldError(f"{name} must be a string without NUL bytes, not "
                             f"{shown(text) if isinstance(text, str) else type_name(text)}")
    return tuple(value.items())


def timezone(value) -> str:
    name = nonempty_string(value)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FieldError(f"unknown time zone {shown(value)} (try 'UTC' or 'Europe/Berlin')") from None
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
        raise FieldError(f"{_CRON_FIELDS[index][0]} field has {shown(token)}, not a number")
    return int(token)


def _cron_span(span: str, step: str | None, index: int) -> tuple[int, int]:
    """The first and last value `span` covers ('*' is the whole range; '3/4' runs from 3 to the end)."""
    label_, low, high = _CRON_FIELDS[index]
    if span == "*":
        return low, (6 if index == 4 else high)
    bounds = [_cron_value(token, index) for token in span.split("-")]
    for bound in bounds:
        if not low <= bound <= high:
            raise FieldError(f"{label_} must be {low}-{high}, not {bound}")
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        raise FieldError(f"{label_} range {shown(span)} runs backwards (write it low-high, or as a list)")
    return bounds[0], (bounds[-1] if len(bounds) == 2 or step is None else high)


def _cron_field(text: str, index: int) -> str:
    label_, low, high = _CRON_FIELDS[index]
    out = []
    for item in text.lower().split(","):
        match = _CRON_ITEM.match(item)
        if not match:
            raise FieldError(f"{label_} field {shown(text)} is not valid crontab syntax")
        span, step = match.groups()
        first, last = _cron_span(span, step, index)
        if step is not None and int(step) == 0:
            raise FieldError(f"{label_} field {shown(text)} has a step of 0")
        if step is not None and int(step) > last - first:
            raise FieldError(f"{label_} step {int(step)} is larger than its range {first}-{last}")
        if index == 4 and (span, step) != ("*", None):  # crontab counts days from Sunday = 0 (or 7): by name
            out.extend(dict.fromkeys(_DAYS[day % 7] for day in range(first, last + 1, int(step or 1))))
            continue
        out.append(span + (f"/{step}" if step else ""))
    return ",".join(dict.fromkeys(out))


def crontab(value) -> str:
    """A 5-field crontab expression; returned normalised (days of week as names)."""
    fields = nonempty_string(value).split()
    if len(fields) != 5:
        raise FieldError(f"must have 5 fields (minute hour day month weekday), not {len(fields)}: {shown(value)}")
    return " ".join(_cron_field(text, index) for index, text in enumerate(fields))


def metrics_path(value) -> Path | None:
    """A node_exporter textfile-collector file ('*.prom'); empty: no metrics file."""
    if string(value) == "":
        return None
    if not value.endswith(".prom") or value.endswith("/.prom"):
        raise FieldError(f"must name a file ending in .prom (the textfile collector reads only those), "
                         f"not {shown(value)}")
    return Path(value)


def http_url(value) -> str:
    """An http:// or https:// URL with a host (a ping URL)."""
    text = nonempty_string(value)
    scheme, _, rest = text.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.split("/")[0] or any(c.isspace() for c in text):
        raise FieldError("must be an http:// or https:// URL with a host, such as "
                         "'https://hc-ping.com/<uuid>'")
    return text
