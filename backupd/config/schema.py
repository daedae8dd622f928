"""How a configuration table is declared: a frozen dataclass whose fields are its keys.

Each key is declared once, with `key(parser, default, doc=...)`: the parser turns the TOML value into the
typed value or raises fields.FieldError; REQUIRED (the default) marks a key the table must have. The loader
reads the allowed keys, their parsers and defaults from the class (`keys`); fields declared without `key`
(a table's name) are not read from the file.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

REQUIRED: Any = dataclasses.MISSING


class Key(NamedTuple):
    """One key of a table: its parser, its default (REQUIRED if none) and its one-line documentation."""

    parse: Callable[[object], object]
    default: object
    doc: str


def key(parse: Callable[[object], object], default: object = REQUIRED, *, doc: str) -> Any:
    """A dataclass field that is a configuration key."""
    return dataclasses.field(default=default, metadata={"parse": parse, "doc": doc})


def keys(cls) -> dict[str, Key]:
    """The configuration keys of the table class `cls`, in declaration order."""
    return {f.name: Key(f.metadata["parse"], f.default, f.metadata["doc"])
            for f in dataclasses.fields(cls) if "parse" in f.metadata}
