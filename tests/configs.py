"""Test configurations: built as Python values, written as real TOML files that the daemon parses.

    write_config(tmp_path)                         one job "main": directory source tmp_path/data, local
                                                   destination tmp_path/archives, state and socket in tmp_path
    write_config(tmp_path, sources={"cmd": command_source(["sh", "-c", "echo hi"])},
                 jobs={"main": job(["cmd"], schedule="0 * * * *")}, daemon={"stop_timeout": "20s"})

Given `daemon` keys are added to (or replace) the defaults; given `jobs`, `sources` or `destinations` replace
that whole section; any other keyword is a top-level table of its own.
"""
from __future__ import annotations

import re
from pathlib import Path

CONFIG_NAME = "backupd.toml"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


# -- TOML writing (the standard library reads TOML but does not write it) ---------------------------------------
def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
                      for c in text)
    return f'"{escaped}"'


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name)


def toml_value(value) -> str:
    """One value: str or Path (a string), bool, int, float (inf and nan included), list, dict (inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return _string(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


def _table(path: list[str], table: dict, lines: list[str]) -> None:
    keys = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (keys or not tables):
        lines += ["", "[" + ".".join(_key(part) for part in path) + "]"]
    lines += [f"{_key(k)} = {toml_value(v)}" for k, v in keys.items()]
    for name, sub in tables.items():
        _table(path + [name], sub, lines)


def toml_text(document: dict) -> str:
    """A whole document: nested dicts become [dotted.tables], every other value a `key = value` line."""
    lines: list[str] = []
    _table([], document, lines)
    return "\n".join(lines).lstrip("\n") + "\n"


# -- the tables of a backupd configuration ------------------------------------------------------------------------
def job(sources, destinations=("local",), **keys) -> dict:
    return {"sources": list(sources), "destinations": list(destinations), **keys}


def directory_source(path, **keys) -> dict:
    return {"type": "directory", "path": path, **keys}


def command_source(argv, output: str = "out.txt", **keys) -> dict:
    return {"type": "command", "command": list(argv), "output": output, **keys}


def local_destination(path, **keys) -> dict:
    return {"type": "local", "path": path, **keys}


def config(base: Path, *, daemon: dict | None = None, jobs: dict | None = None, sources: dict | None = None,
           destinations: dict | None = None, **tables) -> dict:
    """A configuration with everything under `base` (see the module's docstring for what the arguments do)."""
    sources = sources if sources is not None else {"files": directory_source(base / "data")}
    destinations = destinations if destinations is not None else {"local": local_destination(base / "archives")}
    return {"daemon": {"state_dir": base / "state", "socket": base / "ctl.sock", "control_group": "",
                       **(daemon or {})},
            "jobs": jobs if jobs is not None else {"main": job(sources, destinations)},
            "sources": sources, "destinations": destinations, **tables}


def write_config(base: Path, name: str = CONFIG_NAME, **sections) -> Path:
    """Write `config(base, **sections)` to base/name and return its path."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / name
    path.write_text(toml_text(config(base, **sections)))
    return path
