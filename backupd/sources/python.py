"""An application's own state: a fresh object from its factory, made and dumped by a child process of the
application's interpreter (its imports, memory and crashes stay there), archived like a directory.

The child (python_child.py, stdlib only) runs with the run's fresh folder as its working directory. What the
method writes there is archived under `<source name>/`; tables it returns arrive as JSON lines on a pipe and
are written here as `<table>.csv`, a batch of rows at a time.
"""
from __future__ import annotations

import csv
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import DirectorySourceConfig, PythonSourceConfig
from .base import MemberSink, SourceError
from .directory import DirectorySource
from .process import TailReader, exit_text, listed, signal_group, stop_group

CHILD = Path(__file__).with_name("python_child.py")
POLL = 0.1                  # seconds between cancel checks while the child runs
READ_SIZE = 1 << 16
MAX_LINE = 256 << 20        # a line from the child longer than this is refused (the child sends ~1 MiB)
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ")   # and LC_*; nothing else
TABLE_NAME_MAX = 251        # bytes: the name plus '.csv' fits a file name


def child_environment(extra: dict[str, str], scratch: Path) -> dict[str, str]:
    """The daemon's locale, PATH and identity, a private TMPDIR, then the configured variables."""
    env = {name: value for name, value in os.environ.items() if name in PASSED_ENV or name.startswith("LC_")}
    return {**env, "TMPDIR": str(scratch), **extra}


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class TableWriter:
    """What the child sends, as it arrives: each table's rows into `<table>.csv` in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.buffer = bytearray()
        self.tables: list[str] = []
        self.error: str | None = None         # the failure the child reported
        self.done = False
        self._file = None
        self._csv = None

    def feed(self, data: bytes) -> None:
        buffer = self.buffer
        start = len(buffer)
        buffer += data
        end = buffer.find(b"\n", start)
        if end < 0:
            if len(buffer) > MAX_LINE:
                raise SourceError(f"the child sent a line over {MAX_LINE >> 20} MiB; rows must be smaller")
            return
        begin = 0
        while end >= 0:
            self._line(bytes(buffer[begin:end]))
            begin = end + 1
            end = buffer.find(b"\n", begin)
        del buffer[:begin]

    def _line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            raise SourceError(f"the child sent a line that is not JSON: {line[:80]!r}") from None
        if isinstance(message, list):
            if self._csv is None:
                raise SourceError("the child sent rows before naming their table")
            self._csv.writerows(message)
        elif "table" in message:
            self._start(message["table"])
        elif "error" in message:
            self.error = one_line(str(message["error"]), 600)
        elif "done" in message:
            self.done = True

    def _start(self, table) -> None:
        self.close()
        if (not isinstance(table, str) or table in ("", ".", "..") or "/" in table or not table.isprintable()
                or len(table.encode("utf-8", "surrogateescape")) > TABLE_NAME_MAX):
            raise SourceError(f"table name {table!r} cannot be a file name: it must be printable, without '/', "
                              f"and at most {TABLE_NAME_MAX} bytes")
        try:
            self._file = open(self.folder / f"{table}.csv", "x", newline="", encoding="utf-8")
        except FileExistsError:
            raise SourceError(f"table {table!r}: {table}.csv already exists (the method wrote it too, or "
                              "returned the table twice)") from None
        self._csv = csv.writer(self._file, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        self.tables.append(table)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._csv = None


class PythonSource:
    def __init__(self, config: PythonSourceConfig) -> None:
        self.name = config.name
        self.factory = config.factory
        self.method = config.method
        self.interpreter = os.fspath(config.interpreter or sys.executable)
        self.path = [os.fspath(entry) for entry in config.path]
        self.env = dict(config.env)
        self.timeout = float(config.timeout)

    def write(self, sink: MemberSink, workdir: Path) -> None:
        folder, scratch = Path(workdir) / f"{self.name}.python", Path(workdir) / f"{self.name}.tmp"
        for fresh in (folder, scratch):
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir(mode=0o700, parents=True)
        try:
            tables = self._dump(sink, folder, scratch, workdir)
            if not tables and not any(folder.iterdir()):
                sink.warn("", f"{self.factory} {self.method}() wrote no file and returned no table")
            DirectorySource(DirectorySourceConfig(name=self.name, path=folder)).write(sink, workdir)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)

    def _dump(self, sink: MemberSink, folder: Path, scratch: Path, workdir: Path) -> list[str]:
        """Run the child to its end (its group listed under `workdir`); returns the tables it sent. SourceError
        for every failure."""
        read_fd, write_fd = os.pipe()
        spec = {"factory": self.factory, "method": self.method, "path": self.path, "channel": write_fd}
        try:
            proc = subprocess.Popen([self.interpreter, "-I", str(CHILD), json.dumps(spec)], cwd=folder,
                                    env=child_environment(self.env, scratch), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                                    start_new_session=True)
        except OSError as exc:
            os.close(read_fd)
            raise SourceError(f"cannot start the interpreter {self.interpreter}: {exc.strerror}") from None
        finally:
            os.close(write_fd)
        tail, tables = TailReader(proc.stdout), TableWriter(folder)
        tail.start()
        with listed(proc, workdir):
            self._supervised(sink, proc, read_fd, tables, tail)
            signal_group(proc.pid, signal.SIGKILL)     # whatever the application left running
        self._outcome(proc.returncode, tables, tail)
        return tables.tables

    def _supervised(self, sink: MemberSink, proc: subprocess.Popen, read_fd: int, tables: TableWriter,
                    tail: TailReader) -> None:
        """_supervise; on any failure the child's group is stopped. The channel is closed either way."""
        try:
            self._supervise(sink, proc, read_fd, tables, tail)
        except BaseException:
            if proc.returncode is None:
                stop_group(proc)
            raise
        finally:
            os.close(read_fd)
            tables.close()

    def _supervise(self, sink: MemberSink, proc: subprocess.Popen, read_fd: int, tables: TableWriter,
                   tail: TailReader) -> None:
        """Read the channel until the child closes it, then wait for its exit; stops it on timeout or cancel."""
        deadline = time.monotonic() + self.timeout
        reading = True
        while True:
            sink.check_cancel()
            if time.monotonic() >= deadline:
                stop_group(proc)
                raise SourceError(f"{self.factory} {self.method}() timed out after {self.timeout:g}s; the child "
                                  f"and its processes were killed; last output: {last_line(tail)}")
            if not reading:
                try:
                    proc.wait(POLL)
                    return
                except subprocess.TimeoutExpired:
                    continue
            if select.select([read_fd], [], [], POLL)[0]:
                data = os.read(read_fd, READ_SIZE)
                reading = bool(data)
                tables.feed(data)

    def _outcome(self, code: int, tables: TableWriter, tail: TailReader) -> None:
        """Raise SourceError unless the child said it was done and exited 0."""
        if tables.error is not None:
            raise SourceError(tables.error)
        if code == 0 and tables.done:
            return
        if code == 0:
            raise SourceError(f"the child exited before {self.method}() finished (did it call sys.exit or "
                              f"os._exit?); last output: {last_line(tail)}")
        hint = "; out of memory? (the OOM killer sends SIGKILL)" if code == -signal.SIGKILL else ""
        raise SourceError(f"the child running {self.factory} {self.method}() {exit_text(code)}{hint}; "
                          f"last output: {last_line(tail)}")


def last_line(tail: TailReader) -> str:
    """The child's last line of output (stdout and stderr), for a one-line message."""
    lines = tail.text().splitlines()
    return one_line(lines[-1] if lines else "(none)", 300)

