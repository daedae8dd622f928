"""The source types and their keys: one frozen class per `type`, registered by type name in SOURCE_TYPES."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..util.names import MANIFEST_NAME   # the archive's own member; no source may be named like it
from . import fields as f
from .model import SourceConfig
from .schema import key


@dataclass(frozen=True, kw_only=True)
class DirectorySourceConfig(SourceConfig):
    """A directory tree, symlinks kept as links."""

    type = "directory"
    path: Path = key(f.path, doc="the directory to back up")
    exclude: tuple[str, ...] = key(f.string_list, (),
                                   doc="globs on the path relative to the source, or on the file name")
    one_file_system: bool = key(f.boolean, False, doc="do not descend into other mounted file systems")


@dataclass(frozen=True, kw_only=True)
class SqliteSourceConfig(SourceConfig):
    """A consistent copy of an SQLite database taken while the application keeps writing."""

    type = "sqlite"
    path: Path = key(f.path, doc="the database file")
    format: str = key(f.one_of("sqlite", "csv"), "sqlite",
                      doc="a copy via the sqlite3 backup API, or one CSV per table")


@dataclass(frozen=True, kw_only=True)
class CommandSourceConfig(SourceConfig):
    """A program's stdout (argv, no shell), stored as one archive member."""

    type = "command"
    command: tuple[str, ...] = key(f.argv, doc="the program and its arguments (no shell)")
    output: str = key(f.member_name, doc="the member name stdout is stored under")
    timeout: float = key(f.duration, 3600.0, doc="the command is killed after this long")


SOURCE_TYPES: dict[str, type[SourceConfig]] = {
    cls.type: cls for cls in (DirectorySourceConfig, SqliteSourceConfig, CommandSourceConfig)}
