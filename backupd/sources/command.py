"""A command's standard output (argv, no shell), spooled to a scratch file so its size is known for the tar
header; non-zero exit or timeout fails the run with the tail of standard error."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..cancel import Cancelled
from ..config import CommandSourceConfig
from .base import MemberSink, SourceError
from .process import STDERR_TAIL, TERM_GRACE, TailReader, listed, stop_group  # noqa: F401 (STDERR_TAIL: tests)

POLL = 0.1                  # seconds between cancel checks while the command runs


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
                self._run(sink, out, workdir)
                size = os.fstat(out.fileno()).st_size
                out.seek(0)
                sink.add_stream(self.output, out, size, mode=0o600, mtime=time.time())
        finally:
            spool.unlink(missing_ok=True)

    def _run(self, sink: MemberSink, out, workdir: Path) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            raise SourceError(f"cannot start command {self.argv[0]!r}: "
                              f"{exc.strerror}") from None
        tail = TailReader(proc.stderr)
        tail.start()
        with listed(proc, workdir):
            code = self._wait(sink, proc, tail)
        if code == 0:
            tail.join(TERM_GRACE)
        else:
            how = f"exited with code {code}" if code > 0 else f"was killed by signal {-code}"
            raise SourceError(f"command {self.argv[0]!r} {how}; "
                              f"stderr tail: {tail.text()}")

    def _wait(self, sink: MemberSink, proc: subprocess.Popen, tail: TailReader) -> int:
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
                stop_group(proc)
                raise
            if time.monotonic() >= deadline:
                stop_group(proc)
                raise SourceError(f"command {self.argv[0]!r} timed out after "
                                  f"{self.timeout:g}s and was stopped; stderr tail: {tail.text()}")
