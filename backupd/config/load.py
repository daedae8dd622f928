"""Read a TOML file, validate all of it, and return a Config or raise ConfigError listing every problem."""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from . import checks
from .destinations import DESTINATION_TYPES
from .fields import FieldError, did_you_mean, label, shown, type_name
from .model import Config, DaemonConfig, JobConfig
from .schema import REQUIRED, Table, keys
from ..util.names import DELTA_DIR
from .sources import MANIFEST_NAME, SOURCE_TYPES

DEFAULT_PATH = Path("/etc/backupd/backupd.toml")
TOP_LEVEL = ("daemon", "jobs", "sources", "destinations")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(Exception):
    """Every problem found in one configuration file, one line each."""

    def __init__(self, path: Path, errors: list[str]):
        self.path = path
        self.errors = errors
        super().__init__("\n".join(f"{path}: {error}" for error in errors))


def default_path() -> Path:
    return Path(os.environ.get("BACKUPD_CONFIG") or DEFAULT_PATH)


def load(path: Path | str) -> Config:
    path = Path(path).absolute()
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:     # tomllib decodes the whole file first
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(path, [f"not valid TOML: the file is not UTF-8 (byte {exc.object[exc.start]:#04x} "
                                 f"at line {line})"]) from None
    except RecursionError:
        raise ConfigError(path, ["not valid TOML: arrays or tables nested too deeply"]) from None
    return parse(raw, path)


def parse(raw: dict, path: Path) -> Config:
    errors = _Errors()
    errors.unknown_keys(raw, TOP_LEVEL, "")
    tables = _Tables(errors, path.parent.resolve())
    table = raw.get("daemon", {})
    values, _ = tables.values(DaemonConfig, table, "daemon")
    daemon = DaemonConfig(**values)   # every daemon key has a default
    failed = set(table) - set(values) if isinstance(table, dict) else set()
    checks.daemon_paths(daemon, errors.add, unparsed=failed)
    sources = tables.typed(raw, "sources", SOURCE_TYPES)
    destinations = tables.typed(raw, "destinations", DESTINATION_TYPES)
    jobs = {}
    for name, table in _named_tables(raw, "jobs", errors):
        where = f"jobs.{name}"
        values, complete = tables.values(JobConfig, table, where)
        for section in ("sources", "destinations"):
            declared = raw.get(section) if isinstance(raw.get(section), dict) else {}
            if section in values:
                checks.references(values[section], section, declared, where, errors.add)
        checks.differential_keys(table, values, where, errors.add)
        if complete:
            jobs[name] = JobConfig(name=name, **values)
    if errors:
        raise ConfigError(path, errors)
    return Config(path=path, daemon=daemon, jobs=jobs, sources=sources, destinations=destinations)


class _Errors(list):
    def add(self, where: str, message: str) -> None:
        self.append(f"At '{where}': {message}" if where else message)

    def unknown_keys(self, table: dict, allowed, where: str) -> None:
        for name in table:
            if name not in allowed:
                self.add(_join(where, name), "unknown key" + did_you_mean(name, allowed))


def _join(where: str, name: str) -> str:
    return f"{where}.{label(name)}" if where else label(name)


def _named_tables(raw: dict, section: str, errors: _Errors):
    tables = raw.get(section, {})
    if not isinstance(tables, dict):
        errors.add(section, "must be a table of named entries")
        return
    for name, table in tables.items():
        where = _join(section, name)
        if not _NAME.match(name):
            errors.add(where, "names may hold letters, digits, '_', '-' and '.' only")
        elif section == "sources" and name in (MANIFEST_NAME, DELTA_DIR):
            what = "manifest" if name == MANIFEST_NAME else "folder of deltas"
            errors.add(where, f"'{name}' is the archive's {what}; choose another name")
        elif not isinstance(table, dict):
            errors.add(where, "must be a table")
        else:
            yield name, table


class _Tables:
    """Parses tables against their config classes, adding each problem to `errors`."""

    def __init__(self, errors: _Errors, base: Path):
        self.errors = errors
        self.base = base   # relative paths resolve against the config file's folder

    def values(self, cls, table, where: str, extra: tuple[str, ...] = ()) -> tuple[dict, bool]:
        """The parsed keys of `table` present in it, and whether the table had no problem."""
        if not isinstance(table, dict):
            self.errors.add(where, "must be a table")
            return {}, False
        spec = keys(cls)
        before = len(self.errors)
        self.errors.unknown_keys(table, [*extra, *spec], where)
        values = {}
        for name, (parse, default, _) in spec.items():
            if name not in table:
                if default is REQUIRED:
                    self.errors.add(_join(where, name), "is required")
                continue
            if isinstance(parse, Table):    # a table of its own keys: each problem at its own key
                built = self.build(parse.cls, table[name], _join(where, name))
                if built is not None:
                    values[name] = built
                continue
            try:
                value = parse(table[name])
            except FieldError as exc:
                self.errors.add(_join(where, name), str(exc))
                continue
            values[name] = Path(os.path.normpath(self.base / value)) if isinstance(value, Path) else value
        return values, len(self.errors) == before

    def build(self, cls, table, where: str, extra: tuple[str, ...] = (), **identity):
        """An instance of `cls` from `table` (plus `identity`, e.g. its name), or None if it has a problem."""
        values, complete = self.values(cls, table, where, extra)
        return cls(**identity, **values) if complete else None

    def typed(self, raw: dict, section: str, types: dict) -> dict:
        """Each [section.NAME] table as the config class its `type` names."""
        out = {}
        for name, table in _named_tables(raw, section, self.errors):
            kind = table.get("type")
            if not isinstance(kind, str) or kind not in types:
                self.errors.add(f"{section}.{name}.type", _type_problem(kind, types))
                continue
            built = self.build(types[kind], table, f"{section}.{name}", extra=("type",), name=name)
            if built is not None:
                out[name] = built
        return out


def _type_problem(kind, types: dict) -> str:
    known = f"; known types: {', '.join(types)}"
    if kind is None:
        return "is required"
    if not isinstance(kind, str):
        return f"must be a string, not {type_name(kind)}{known}"
    return f"unknown type {shown(kind)}" + did_you_mean(kind, types, otherwise=known)
