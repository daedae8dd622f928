"""What goes out of the daemon to tell people: hook commands and dead-man pings. Neither ever changes a run.

Hooks (on_start, on_success, on_failure): argv without a shell, stdin closed, the output kept to its last lines
for the log, killed with its process group at the timeout.
Pings, with healthchecks.io semantics: POST <url>/start, <url> (success), <url>/fail (with the error), each
retried with backoff within a bounded total time. The URL's path is its key: logs show only its host.
"""
from __future__ import annotations

import http.client
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque

from .. import __version__

log = logging.getLogger("backupd.notify")


# -- hooks -----------------------------------------------------------------------------------------------------
TAIL_LINES = 20             # lines of a hook's output that reach the log
LINE_MAX = 500              # bytes kept of each of them
OUTPUT_GRACE = 2.0          # seconds the output may still flow after the hook ended (a child holding the pipe)


class _Tail(threading.Thread):
    """Reads a hook's output to its end, keeping only the last TAIL_LINES lines, each cut to LINE_MAX bytes."""

    def __init__(self, pipe) -> None:
        super().__init__(name="hook-output", daemon=True)
        self._pipe = pipe
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        with self._pipe:
            while piece := self._pipe.readline(LINE_MAX):    # bounded: a line without end is read in pieces
                self.lines.append(piece.decode("utf-8", "replace").rstrip("\n"))
                if len(piece) == LINE_MAX and not piece.endswith(b"\n"):
                    self._skip_rest_of_line()

    def _skip_rest_of_line(self) -> None:
        while (piece := self._pipe.readline(65536)) and not piece.endswith(b"\n"):
            pass

    def text(self) -> list[str]:
        self.join(OUTPUT_GRACE)
        return list(self.lines)


def run_hook(name: str, argv: tuple[str, ...], env: dict[str, str], timeout: float, log_extra: dict) -> int | None:
    """Run one hook to its end or its timeout; its exit code (None: it could not start or was killed)."""
    extra = {**log_extra, "hook": name, "command": argv[0]}
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, start_new_session=True, close_fds=True)
    except OSError as exc:
        log.error("hook could not start", extra={**extra, "error": exc.strerror or str(exc)})
        return None
    tail = _Tail(proc.stdout)
    tail.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        log.error("hook timed out; killed with its process group",
                  extra={**extra, "timeout": timeout, "output": tail.text()})
        return None
    level = logging.INFO if code == 0 else logging.WARNING
    log.log(level, "hook finished" if code == 0 else "hook failed; the run's result stands",
            extra={**extra, "exit_code": code, "output": tail.text()})
    return code


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# -- pings -----------------------------------------------------------------------------------------------------
PING_TIMEOUT = 10.0         # seconds one attempt may take to connect, or wait for each read
PING_RETRIES = 3            # attempts after the first
PING_BACKOFF = 1.0          # seconds before the first retry, doubled before each next one
PING_BUDGET = 60.0          # seconds every attempt and pause together may take
BODY_MAX = 10_000           # bytes of a body sent (healthchecks keeps 10 kB)
RETRIED_STATUSES = (408, 429)   # and every 5xx: the server may answer better later


def shown_url(url: str) -> str:
    """The URL as logs may show it: scheme and host only (the path identifies, and lets anyone ping, the check)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."


def ping(url: str, body: str, log_extra: dict, *, timeout: float = PING_TIMEOUT,
         retries: int = PING_RETRIES, backoff: float = PING_BACKOFF, budget: float = PING_BUDGET) -> bool:
    """POST `body` to `url`; True once it answered 2xx/3xx. Failures are logged, never raised."""
    deadline = time.monotonic() + budget
    data = body.encode("utf-8", "replace")[:BODY_MAX]
    error, attempts = "", 0
    for attempt in range(retries + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        attempts += 1
        error, again = _attempt(url, data, min(timeout, left))
        if not error:
            return True
        if not again:
            break
        time.sleep(max(0.0, min(backoff * 2 ** attempt, deadline - time.monotonic())))
    log.warning("ping failed; the run's result stands",
                extra={**log_extra, "url": shown_url(url), "attempts": attempts, "error": error})
    return False


def _attempt(url: str, data: bytes, timeout: float) -> tuple[str, bool]:
    """One POST: ("", _) when it was answered, else (the error, whether another attempt may help)."""
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "User-Agent": f"backupd/{__version__}", "Content-Type": "text/plain; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(1024)
        return "", False
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}", exc.code >= 500 or exc.code in RETRIED_STATUSES
    except urllib.error.URLError as exc:
        return str(exc.reason), True
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, True
