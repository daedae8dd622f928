"""Random mutations of a valid configuration, seeded: deleted keys and tables, values of the wrong type, unknown
keys, out-of-range values, absurd cron strings, huge strings, unicode, renamed tables, and text that is not TOML.
The keys come from the typed config classes themselves, so every key a later change adds is mutated too."""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path

from backupd.config import DESTINATION_TYPES, SOURCE_TYPES, DaemonConfig, JobConfig
from backupd.config.schema import Table, keys
from tests.configs import command_source, directory_source, job, local_destination, toml_text

CRONS = ["", "* * * *", "* * * * * *", "60 * * * *", "*/0 * * * *", "0 0 30 2 *", "0 0 31 2 *", "@reboot",
         "@yearly", "0 0 * * 8", "a b c d e", "1-100 * * * *", "30-10 * * * *", "0 */25 * * *", "*/100 * * * *",
         "* * * * sat-sun", "0 0 ? * *", "0 0 L * *", "0 0 * * 7#2", "0 0 1 1 1,2,3,4,5,6,7,8", "0\t3 * * *",
         "*/" + "9" * 40 + " * * * *", "0 3 1 * mon", "\u0663 * * * *", "0 3 * * mon-fri,sun"]
ODD_NAMES = ["", " ", "x" * 300, "emoji-\U0001F4BE", "\u202etfel", "tab\tname", "nul\0name", "a.b", "[x]", "ünï"]


def odd_value(rng: random.Random):
    """A value of any TOML type, or a string meant to break a parser."""
    pool = [0, -1, 1, 2**63 - 1, -(2**63), 10**18, 3.5, -0.0, float("inf"), float("-inf"), float("nan"), True,
            False, "", " ", "x" * 100_000, "\U0001F4BE" * 1000, "a\0b", "\u202e", "../../etc/passwd", "/", "-1s",
            "0s", "1e999", "99999999999999999999d", "NaN", "20MiB/s", "8MiB", "10GiB", "-5MiB", "1KiB/s", [], [1, "a"],
            [[]], ["sh", "-c", "true"], {}, {"a": {"b": {"c": 1}}}, rng.choice(CRONS), rng.choice(ODD_NAMES)]
    return rng.choice(pool)


def base_config(base: Path) -> dict:
    """A valid configuration with one table of every source and destination type and most job keys set."""
    sources = {"files": directory_source(base / "data", exclude=["*.tmp"]),
               "db": {"type": "sqlite", "path": base / "app.db"},
               "cmd": command_source(["sh", "-c", "echo hi"], timeout="5m"),
               "app": {"type": "python", "factory": "app:make", "path": [str(base / "app")]}}
    destinations = {"local": local_destination(base / "archives"),
                    "drive": {"type": "gdrive", "credentials": str(base / "sa.json"), "folder": "b/host",
                              "chunk_size": "1MiB", "bandwidth_limit": "20MiB/s"}}
    main = job(list(sources), list(destinations), schedule="15 3 * * *", timezone="Europe/Berlin",
               compression_level=5, misfire_grace="2h", keep={"last": 3, "daily": 7})
    return {"daemon": {"state_dir": base / "state", "socket": base / "ctl.sock", "control_group": "",
                       "stop_timeout": "20s"},
            "jobs": {"main": main}, "sources": sources, "destinations": destinations}


def tables(doc: dict) -> list[tuple[tuple[str, ...], dict]]:
    """(path, {key: parse spec}) of every table of `doc` whose keys are declared by a config class."""
    found = [(("daemon",), keys(DaemonConfig))]
    for name, table in doc.get("jobs", {}).items() if isinstance(doc.get("jobs"), dict) else ():
        found.append((("jobs", name), keys(JobConfig)))
        for key_name, spec in keys(JobConfig).items():
            if isinstance(spec.parse, Table) and isinstance(table, dict):
                found.append((("jobs", name, key_name), keys(spec.parse.cls)))
    for section, types in (("sources", SOURCE_TYPES), ("destinations", DESTINATION_TYPES)):
        for name, table in doc.get(section, {}).items() if isinstance(doc.get(section), dict) else ():
            kind = table.get("type") if isinstance(table, dict) else None
            if isinstance(kind, str) and kind in types:
                found.append(((section, name), {"type": None, **keys(types[kind])}))
    return found


def _at(doc: dict, path: tuple[str, ...]) -> dict:
    """The table at `path` (made if missing); a throwaway one if an earlier change made a part of it a value."""
    for part in path:
        doc = doc.setdefault(part, {}) if isinstance(doc, dict) else {}
    return doc if isinstance(doc, dict) else {}


@dataclass
class Mutation:
    what: str           # one line: what was changed, where
    text: bytes         # the configuration file's bytes


def _delete(doc, rng, path, spec):
    table = _at(doc, path)
    if isinstance(table, dict) and table:
        name = rng.choice(sorted(table))
        del table[name]
        return f"deleted {'.'.join(path + (name,))}"
    return _unknown(doc, rng, path, spec)


def _wrong_value(doc, rng, path, spec):
    name = rng.choice(sorted(spec))
    value = odd_value(rng)
    _at(doc, path)[name] = value
    return f"{'.'.join(path + (name,))} = {repr(value)[:60]}"


def _unknown(doc, rng, path, spec):
    name = rng.choice(ODD_NAMES + ["colour", "chunksize", "Schedule", "keep_last", "bandwidth"])
    _at(doc, path)[name] = odd_value(rng)
    return f"unknown key {'.'.join(path)}.{name[:40]!r}"


def _cron(doc, rng, path, spec):
    name = rng.choice(["schedule", "verify_schedule"])
    _at(doc, ("jobs", "main"))[name] = value = rng.choice(CRONS)
    return f"jobs.main.{name} = {value[:60]!r}"


def _not_a_table(doc, rng, path, spec):
    parent, name = path[:-1], path[-1]
    _at(doc, parent)[name] = value = odd_value(rng)
    return f"{'.'.join(path)} = {repr(value)[:60]} (not a table)"


def _rename(doc, rng, path, spec):
    section = rng.choice(["sources", "destinations", "jobs"])
    tables_of = doc.get(section)
    if not isinstance(tables_of, dict) or not tables_of:
        return _wrong_value(doc, rng, path, spec)
    old, new = rng.choice(sorted(tables_of)), rng.choice(ODD_NAMES)
    tables_of[new] = tables_of.pop(old)
    return f"renamed {section}.{old} to {new[:40]!r}"


KEY_OPS = [_delete, _wrong_value, _wrong_value, _unknown, _cron, _not_a_table, _rename]


def _text_op(text: bytes, rng: random.Random) -> tuple[str, bytes]:
    at = rng.randrange(len(text))
    ops = {"truncated": lambda: text[:at],
           "a byte inserted": lambda: text[:at] + bytes([rng.randrange(256)]) + text[at:],
           "not UTF-8": lambda: text[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + text[at:],
           "a line doubled": lambda: _double_line(text, rng),
           "'=' as ':'": lambda: text.replace(b" = ", b": ", 1),
           "a datetime value": lambda: text.replace(b'stop_timeout = "20s"', b"stop_timeout = 1979-05-27T07:32:00Z"),
           "nested 5000 deep": lambda: text + b"\n[x]\ny = " + b"[" * 5000 + b"]" * 5000 + b"\n"}
    name = rng.choice(sorted(ops))
    return f"text: {name} at byte {at}", ops[name]()


def _double_line(text: bytes, rng: random.Random) -> bytes:
    lines = text.split(b"\n")
    index = rng.randrange(len(lines))
    return b"\n".join(lines[:index + 1] + lines[index:])


def mutate(base: dict, rng: random.Random) -> Mutation:
    """One to three changes to a copy of `base`, or a change to its TOML text."""
    doc = copy.deepcopy(base)
    if rng.random() < 0.15:
        what, text = _text_op(toml_text(doc).encode(), rng)
        return Mutation(what, text)
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path, spec = rng.choice(tables(doc) or [(("daemon",), keys(DaemonConfig))])
        done.append(rng.choice(KEY_OPS)(doc, rng, path, spec))
    try:
        text = toml_text(doc).encode("utf-8", "surrogatepass")
    except TypeError as exc:      # a value toml_text has no form for
        return Mutation(f"{'; '.join(done)} (unwritable: {exc})"[:300], toml_text(base).encode())
    return Mutation("; ".join(done), text)
