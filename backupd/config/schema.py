"""How a configuration table is declared: a frozen dataclass whose fields are its keys.

Each key is declared once, with `key(parser, default, doc=...)`: the parser turns the TOML value into the
typed value or raises fields.FieldError; REQUIRED (the default) marks a key the table must have. The loader
reads the allowed keys, their parsers and defaults from the class (`keys`); fields declared without `key`
(a table's name) are not read from the file. A key whose value is a table of keys of its own (a job's `keep`)
is declared with `table(cls)`: the loader reads it like any table, each problem named at its own key.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from .fields import FieldError, type_name

REQUIRED: Any = dataclasses.MISSING


class Key(NamedTuple):
    """One key of a table: its parser, its default (REQUIRED if none) and its one-line documentation."""

    parse: Callable[[object], object]
    default: object
    doc: str


def key(parse: Callable[[object], object], default: object = REQUIRED, *, doc: str) -> Any:
    """A dataclass field that is a configuration key."""
    return dataclasses.field(default=default, metadata={"parse": parse, "doc": doc})


class Table:
    """The parser of a key whose value is a table of `cls`'s keys (the loader reads it key by key)."""

    def __init__(self, cls) -> None:
        self.cls = cls

    def __call__(self, value):
        """The table as an instance of `cls`, for callers other than the loader; FieldError if it is wrong."""
        if not isinstance(value, dict):
            raise FieldError(f"must be a table, not {type_name(value)}")
        spec = keys(self.cls)
        try:
            return self.cls(**{name: spec[name].parse(item) for name, item in value.items()})
        except KeyError as exc:
            raise FieldError(f"unknown key {exc.args[0]!r}") from None


def table(cls, *, doc: str) -> Any:
    """A dataclass field that is a table of `cls`'s keys; absent, it is `cls()` (every key's default)."""
    return dataclasses.field(default=cls(), metadata={"parse": Table(cls), "doc": doc})


def keys(cls) -> dict[str, Key]:
    """The configuration keys of the table class `cls`, in declaration order."""
    return {f.name: Key(f.metadata["parse"], f.default, f.metadata["doc"])
            for f in dataclasses.fields(cls) if "parse" in f.metadata}
