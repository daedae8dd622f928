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


@dataclass(frozen=True, kw_only=True)
class PythonSourceConfig(SourceConfig):
    """A fresh object of an application's own class, made and dumped in a child process of its interpreter."""

    type = "python"
    factory: str = key(f.import_string, doc="'module:callable' called once per run, with no arguments")
    method: str = key(f.identifier, "dump", doc="called on the object with the folder to write into")
    interpreter: Path | None = key(f.path, None, doc="the application's python (default: the daemon's own)")
    path: tuple[Path, ...] = key(f.absolute_paths, (), doc="absolute folders put first on the child's sys.path")
    env: tuple[tuple[str, str], ...] = key(f.environment, (), doc="environment variables for the child")
    timeout: float = key(f.duration, 3600.0, doc="the child and its children are killed after this long")


SOURCE_TYPES: dict[str, type[SourceConfig]] = {
    cls.type: cls for cls in (DirectorySourceConfig, SqliteSourceConfig, CommandSourceConfig, PythonSourceConfig)}
