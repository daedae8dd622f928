"""The child side of the `python` source: run by the application's own interpreter as a file (`python -I
python_child.py SPEC`), so it imports nothing but the standard library and runs on any Python 3.8 or later.

It imports the factory, calls it once, calls the method with the working directory (the folder to write
into) and, if the method returns tables, streams their rows to backupd. Everything it tells backupd goes as
JSON lines over the file descriptor named in SPEC (the application's own stdout and stderr stay free):
  {"table": NAME}          the rows that follow belong to this table
  [[...], [...], ...]      a batch of rows of the current table (the first row of a table is its header)
  {"error": TEXT, "stage": "import" | "factory" | "method" | "rows"}
  {"done": TABLES}         the method returned and every row was sent
"""
import importlib
import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

BATCH_FIRST = 256               # rows in the first batch of a table
BATCH_MAX = 4096                # rows in a batch at most
BATCH_BYTES = 1 << 20           # a batch is halved once its line is larger than this, doubled below a quarter


class Failed(Exception):
    """Ends the child with one line for backupd: what failed and where."""

    def __init__(self, stage, text):
        super().__init__(text)
        self.stage, self.text = stage, text


class BytesValue(TypeError):
    """A row holds bytes: CSV is text, so the application must decode or hex them first."""


def one_line(text, limit=400):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def described(exc):
    """"TYPE: MESSAGE (at FILE:LINE)" with the innermost frame that is not the import machinery's or ours."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not frame.filename.startswith("<") and frame.filename not in (__file__, importlib.__file__)]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    message = f": {one_line(exc)}" if str(exc) else ""
    return f"{type(exc).__name__}{message}{where}"


def raised(what, exc):
    return f"{what} raised {described(exc)}"


def encode_value(value):
    """json.dumps's fallback: bytes are refused, anything else is written as str() (as the csv module does)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise BytesValue("bytes")
    return str(value)


def dumps(obj):
    return json.dumps(obj, default=encode_value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load_factory(spec):
    module_name, _, attribute = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
    except BaseException as exc:
        raise Failed("import", f"cannot import {module_name} with {sys.executable}: {described(exc)}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise Failed("import", f"{module_name} (imported with {sys.executable}) "
                                   f"has no attribute {part!r}") from None
    if not callable(target):
        raise Failed("import", f"{spec} is a {type(target).__name__}, not a callable")
    return target


class Tables:
    """Streams a mapping of table name -> rows over the channel, one batch of rows per line."""

    def __init__(self, channel):
        self.channel = channel

    def send(self, tables):
        count = 0
        for name, rows in tables.items():
            if not isinstance(name, str):
                raise Failed("rows", f"a table name is a {type(name).__name__}, not a string: {name!r}")
            self.channel.write(dumps({"table": name}) + b"\n")
            self.rows(name, rows)
            count += 1
        return count

    def rows(self, table, rows):
        batch, size, number, header = [], BATCH_FIRST, 0, None
        try:
            for number, row in enumerate(rows, 1):
                if isinstance(row, Mapping):
                    if header is None:
                        header = list(row.keys())
                        batch.append(header)
                    row = self.dict_row(table, number, row, header)
                elif not isinstance(row, (list, tuple)):
                    raise Failed("rows", f"table {table!r} row {number}: a {type(row).__name__}, "
                                         "not a list, tuple or dict")
                batch.append(row)
                if len(batch) >= size:
                    size = self.flush(table, number - len(batch), batch, size)
                    batch = []
        except Failed:
            raise
        except BaseException as exc:
            raise Failed("rows", f"table {table!r} row {number + 1}: {raised('the rows', exc)}") from None
        if batch:
            self.flush(table, number - len(batch), batch, size)

    @staticmethod
    def dict_row(table, number, row, header):
        if row.keys() != set(header):
            raise Failed("rows", f"table {table!r} row {number}: its keys {one_line(list(row.keys()), 120)} "
                                 f"differ from the first row's {one_line(header, 120)}")
        return [row[key] for key in header]

    def flush(self, table, before, batch, size):
        """Send one batch (rows before+1...); returns the next batch size."""
        try:
            line = dumps(batch)
        except (BytesValue, UnicodeEncodeError, ValueError) as exc:
            self.refuse(table, before, batch, exc)
        self.channel.write(line + b"\n")
        if len(line) > BATCH_BYTES:
            return max(1, size // 2)
        return min(BATCH_MAX, size * 2) if len(line) < BATCH_BYTES // 4 else size

    @staticmethod
    def refuse(table, before, batch, exc):
        """Name the first row of `batch` that cannot be sent, and why."""
        for offset, row in enumerate(batch, 1):
            for column, value in enumerate(row, 1):
                try:
                    dumps(value)
                except BytesValue:
                    why = f"column {column} is bytes; CSV holds text: decode or hex it first"
                except (UnicodeEncodeError, ValueError) as problem:
                    why = f"column {column} cannot be written as UTF-8 text ({one_line(problem, 120)})"
                else:
                    continue
                raise Failed("rows", f"table {table!r} row {before + offset}: {why}")
        raise Failed("rows", f"table {table!r}: cannot send rows: {one_line(exc)}")


def run(spec, channel):
    factory = load_factory(spec["factory"])
    try:
        state = factory()
    except BaseException as exc:
        raise Failed("factory", raised("the factory " + spec["factory"], exc)) from None
    what = f"{type(state).__name__}.{spec['method']}"
    method = getattr(state, spec["method"], None)
    if not callable(method):
        raise Failed("method", f"the {type(state).__name__} object has no method {spec['method']!r}")
    try:
        result = method(Path.cwd())
    except BaseException as exc:
        raise Failed("method", raised(what, exc)) from None
    if result is None:
        return 0
    if not isinstance(result, Mapping):
        raise Failed("method", f"{what} returned a {type(result).__name__}; expected None, "
                               "or a mapping of table name to rows")
    return Tables(channel).send(result)


def main(argv):
    spec = json.loads(argv[1])
    channel = os.fdopen(spec["channel"], "wb", buffering=1 << 16)
    sys.argv[:] = argv[:1]
    sys.path[:0] = spec["path"]
    try:
        message = {"done": run(spec, channel)}
    except Failed as failed:
        message = {"error": failed.text, "stage": failed.stage}
    channel.write(dumps(message) + b"\n")
    channel.close()
    return 1 if "error" in message else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
