"""Read a TOML file, validate all of it, and return a Config or raise ConfigError listing every problem."""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path

from . import schema
from .fields import FieldError
from .model import Config, DaemonConfig, DestinationConfig, JobConfig, SourceConfig

DEFAULT_PATH = Path("/etc/backupd/backupd.toml")
MANIFEST_MEMBER = "MANIFEST.json"
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
    return parse(raw, path)


def parse(raw: dict, path: Path) -> Config:
    errors = _Errors()
    errors.unknown_keys(raw, schema.TOP_LEVEL, "")
    base = path.parent.resolve()
    daemon = DaemonConfig(**_table(raw.get("daemon", {}), schema.DAEMON, "daemon", errors, base))
    sources = _typed_tables(raw, "sources", schema.SOURCE_TYPES, SourceConfig, errors, base)
    destinations = _typed_tables(raw, "destinations", schema.DESTINATION_TYPES,
                                 DestinationConfig, errors, base)
    jobs = {}
    for name, table in _named_tables(raw, "jobs", errors):
        values = _table(table, schema.JOB, f"jobs.{name}", errors, base)
        for section in ("sources", "destinations"):
            declared = raw.get(section) if isinstance(raw.get(section), dict) else {}
            _check_references(values, section, declared, f"jobs.{name}", errors)
        jobs[name] = JobConfig(name=name, **values)
    if errors:
        raise ConfigError(path, errors)
    return Config(path=path, daemon=daemon, jobs=jobs, sources=sources, destinations=destinations)


class _Errors(list):
    def add(self, where: str, message: str) -> None:
        self.append(f"At '{where}': {message}" if where else message)

    def unknown_keys(self, table: dict, allowed, where: str) -> None:
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, list(allowed), n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                self.add(_join(where, key), f"unknown key{suggestion}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _named_tables(raw: dict, section: str, errors: _Errors):
    tables = raw.get(section, {})
    if not isinstance(tables, dict):
        errors.add(section, "must be a table of named entries")
        return
    for name, table in tables.items():
        if not _NAME.match(name):
            errors.add(f"{section}.{name}", "names may hold letters, digits, '_', '-' and '.' only")
        elif section == "sources" and name == MANIFEST_MEMBER:
            errors.add(f"{section}.{name}", f"'{MANIFEST_MEMBER}' is the archive's manifest; choose another name")
        elif not isinstance(table, dict):
            errors.add(f"{section}.{name}", "must be a table")
        else:
            yield name, table


def _table(table: dict, spec: dict, where: str, errors: _Errors, base: Path) -> dict:
    """Parse `table` against `spec`; bad or missing keys are added to errors and left out."""
    if not isinstance(table, dict):
        errors.add(where, "must be a table")
        return {}
    errors.unknown_keys(table, spec, where)
    values = {}
    for key, (parser, default) in spec.items():
        if key not in table:
            if default is schema.REQUIRED:
                errors.add(_join(where, key), "is required")
            else:
                values[key] = default
            continue
        try:
            value = parser(table[key])
        except FieldError as exc:
            errors.add(_join(where, key), str(exc))
            continue
        if isinstance(value, Path):
            value = Path(os.path.normpath(base / value))
        values[key] = value
    return values


def _typed_tables(raw, section, types, model, errors, base) -> dict:
    out = {}
    for name, table in _named_tables(raw, section, errors):
        kind = table.get("type")
        if kind not in types:
            hint = difflib.get_close_matches(str(kind), list(types), n=1)
            known = f"did you mean '{hint[0]}'?" if hint else f"known types: {', '.join(types)}"
            errors.add(f"{section}.{name}.type",
                       "is required" if kind is None else f"unknown type {kind!r}; {known}")
            continue
        spec = {"type": (str, None), **types[kind]}
        values = _table(table, spec, f"{section}.{name}", errors, base)
        values.pop("type", None)
        out[name] = model(name=name, type=kind, options=values)
    return out


def _check_references(values: dict, key: str, known: dict, where: str, errors: _Errors) -> None:
    names = values.get(key)
    if names is None:
        return
    if not names:
        errors.add(f"{where}.{key}", f"must name at least one of the configured {key}")
    for name in names:
        if name not in known:
            hint = difflib.get_close_matches(name, list(known), n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            errors.add(f"{where}.{key}", f"names unknown {key[:-1]} '{name}'{suggestion}")
