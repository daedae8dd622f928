"""A command's standard output (argv, no shell), spooled to a scratch file so its size is known for the tar
header; non-zero exit or timeout fails the run with the tail of standard error."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from ..cancel import Cancelled
from ..config import CommandSourceConfig
from .base import MemberSink, SourceError

STDERR_TAIL = 4096          # bytes of standard error kept for the error message
POLL = 0.1                  # seconds between cancel checks while the command runs
TERM_GRACE = 5.0            # seconds between SIGTERM and SIGKILL


class _TailReader(threading.Thread):
    """Drains a pipe, keeping only its last STDERR_TAIL bytes."""

    def __init__(self, pipe) -> None:
        super().__init__(name="command-stderr", daemon=True)
        self._pipe = pipe
        self._tail = b""

    def run(self) -> None:
        with self._pipe:
            for chunk in iter(lambda: self._pipe.read1(65536), b""):
                self._tail = (self._tail + chunk)[-STDERR_TAIL:]

    def text(self) -> str:
        self.join(TERM_GRACE)
        return self._tail.decode("utf-8", "replace").strip() or "(empty)"


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group; SIGKILL what is left of the group (children that ignored
    it, or the command itself if it lingers past TERM_GRACE)."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(TERM_GRACE)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class CommandSource:
    def __init__(self, config: CommandSourceConfig) -> None:
        self.name = config.name
        self.argv = list(config.command)
        self.output = config.output
        self.timeout = float(config.timeout)

    def write(self, sink: MemberSink, workdir: Path) -> None:
        spool = Path(workdir) / f"{self.name}.stdout"
        try:
            with open(spool, "w+b") as out:
                self._run(sink, out)
                size = os.fstat(out.fileno()).st_size
                out.seek(0)
                sink.add_stream(self.output, out, size, mode=0o600, mtime=time.time())
        finally:
            spool.unlink(missing_ok=True)

    def _run(self, sink: MemberSink, out) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            raise SourceError(f"cannot start command {self.argv[0]!r}: "
                              f"{exc.strerror}") from None
        tail = _TailReader(proc.stderr)
        tail.start()
        code = self._wait(sink, proc, tail)
        if code == 0:
            tail.join(TERM_GRACE)
        else:
            how = f"exited with code {code}" if code > 0 else f"was killed by signal {-code}"
            raise SourceError(f"command {self.argv[0]!r} {how}; "
                              f"stderr tail: {tail.text()}")

    def _wait(self, sink: MemberSink, proc: subprocess.Popen, tail: _TailReader) -> int:
        """The exit code; stops the command on timeout or cancellation."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return proc.wait(min(POLL, max(deadline - time.monotonic(), 0)))
            except subprocess.TimeoutExpired:
                pass
            try:
                sink.check_cancel()
            except Cancelled:
                _stop(proc)
                raise
            if time.monotonic() >= deadline:
                _stop(proc)
                raise SourceError(f"command {self.argv[0]!r} timed out after "
                                  f"{self.timeout:g}s and was stopped; stderr tail: {tail.text()}")
