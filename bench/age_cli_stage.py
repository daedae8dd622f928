"""The alternative the encryption benchmark compares with pyrage: the `age` program as a child process, as the
encryptor stage of the same archive pipeline, with the interface of backupd.archive.encrypt.AgeEncryptor
(attach / stop). Only the benchmark uses it.

age encrypts on its own core without holding our interpreter's lock. Two threads of ours: the encryptor stage
writes zstd's output into age's stdin; the output thread reads age's stdout into pooled buffers for the writer
stage and, at the end, checks age's exit status before it passes the end marker on. Any error fails the
whole pipeline; whoever meets it first ends age, so no thread is left waiting on a pipe. The price: every
byte goes through two pipes (four copies) and a second process.
"""
from __future__ import annotations

import fcntl
import os
import queue
import shutil
import subprocess
import threading

from backupd.archive.encrypt import EncryptError
from backupd.archive.pipeline import END, Channel, Pipeline

PROGRAM = "age"
PIPE_SIZE = 1 << 20                      # larger pipes: fewer wake-ups per MiB (Linux allows 1 MiB unprivileged)
_F_SETPIPE_SZ = 1031
STDERR_SHOWN = 200                       # characters of age's last stderr line an error repeats


def program_missing(program: str = PROGRAM) -> str | None:
    """Why `program` cannot be run here, or None."""
    return None if shutil.which(program) else f"the '{program}' program is not installed (apt-get install age)"


def error_line(output: bytes, limit: int = STDERR_SHOWN) -> str:
    """age's error line (else the last line it wrote on stderr), without its prefix, printable, cut to `limit`."""
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("age: error: ")] or lines[-1:]
    text = errors[0].removeprefix("age: error: ").removeprefix("age: ") if errors else ""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def widen_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass            # a smaller pipe works too


def fill(fd: int, buffer: bytearray) -> int:
    """Read from `fd` until `buffer` is full or the input ends; the bytes read."""
    pos, size = 0, len(buffer)
    with memoryview(buffer) as view:
        while pos < size:
            count = os.readv(fd, [view[pos:]])
            if not count:
                break
            pos += count
    return pos


def write_fd(fd: int, data) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view):]


class AgeCliEncryptor:
    """A stage of the archive's pipeline (between the compressor and the writer) that encrypts everything
    passing through to `recipients` (public keys, as the configuration checked them)."""

    label = "age"

    def __init__(self, recipients, program: str = PROGRAM) -> None:
        if not recipients:
            raise ValueError("AgeCliEncryptor needs at least one recipient")
        self.recipients = tuple(recipients)
        self.program = program
        self._proc: subprocess.Popen | None = None
        self._output: threading.Thread | None = None
        self._error: EncryptError | None = None
        self._error_lock = threading.Lock()

    def attach(self, pipeline: Pipeline, inbox: Channel, outbox: Channel, pool: queue.Queue,
               buffer_size: int) -> None:
        """Start age and this stage's threads: (buffer, length) items of `inbox` go encrypted, as
        (buffer, length) items, into `outbox`; buffers are taken from `pool` and given back to it."""
        self._pipeline, self._outbox, self._pool, self._buffer_size = pipeline, outbox, pool, buffer_size
        self._proc = self._start()
        pipeline.stage("archive-encryptor", inbox, self._feed, self._end_input)
        self._output = threading.Thread(target=self._read_output, name="archive-encrypted", daemon=True)
        self._output.start()

    def _start(self) -> subprocess.Popen:
        missing = program_missing(self.program)
        if missing:
            raise EncryptError(missing)
        argv = [self.program, "--encrypt"]
        for recipient in self.recipients:
            argv += ["--recipient", recipient]
        try:       # age writes a line or two on stderr: the pipe holds them until it exited
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    bufsize=0)
        except OSError as exc:
            raise EncryptError(f"cannot start {self.program}: {exc.strerror}") from None
        widen_pipe(proc.stdin.fileno())
        widen_pipe(proc.stdout.fileno())
        return proc

    # -- the encryptor stage: zstd's output into age -----------------------------------------------------
    def _feed(self, item) -> None:
        buffer, length = item
        try:
            with memoryview(buffer) as view:
                write_fd(self._proc.stdin.fileno(), view[:length])
        except OSError:         # age ended early: its exit status and stderr say why
            raise self._failure() from None
        self._pool.put(buffer)

    def _end_input(self) -> None:
        try:
            self._proc.stdin.close()        # age writes its last chunk and exits
        except OSError:
            raise self._failure() from None

    # -- the output thread: age's output to the writer -------------------------------------------------
    def _read_output(self) -> None:
        try:
            fd = self._proc.stdout.fileno()
            while True:
                buffer = self._take()
                count = fill(fd, buffer)
                if count:
                    self._outbox.put((buffer, count))
                if count < len(buffer):
                    break
            if self._proc.wait() != 0:
                raise self._failure()
            self._outbox.put(END)
        except BaseException as exc:        # this one's own failure, or the pipeline's: end age either way
            self._kill()
            self._pipeline.fail(exc)

    def _take(self) -> bytearray:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return bytearray(self._buffer_size)

    def _failure(self) -> EncryptError:
        """age's own account of why it ended (its last stderr line), once it exited; the same for every
        thread that asks."""
        with self._error_lock:
            if self._error is None:
                code = self._proc.wait()
                reason = error_line(self._proc.stderr.read())
                self._error = EncryptError(
                    f"{self.program} was killed (signal {-code})" + (f": {reason}" if reason else "") if code < 0
                    else f"{self.program} failed (exit {code}): {reason or 'no message'}")
            return self._error

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def stop(self) -> None:
        """End age (killed if still running), the output thread and the pipes; call once every stage has
        ended. Never raises."""
        if self._proc is None:
            return
        self._kill()
        self._proc.wait()
        if self._output is not None:
            self._output.join()
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
