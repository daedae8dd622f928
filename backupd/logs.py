"""Logging setup: one JSON object per line on stderr (journald keeps it), or plain text for a terminal.

In JSON mode nothing else reaches stderr: uncaught exceptions (main thread, other threads, unraisable ones from
__del__ or the garbage collector), warnings, and a log line that itself fails to be written become log lines.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(extras)s"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "extras"}
_SECRET = re.compile(r"(?i)(access_token|refresh_token|client_secret|private_key|assertion|"
                     r"authorization)([\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',&}]+")


def redact(text: str) -> str:
    """Mask anything that looks like a credential value in free text."""
    return _SECRET.sub(r"\1\2***", text)


class RedactingFilter(logging.Filter):
    """Last line of defence: no token or key reaches a log line, whatever a library put in a message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:   # arguments that do not fit the message: the handler reports it (handleError)
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items()
                  if k not in _RESERVED and not k.startswith("_") and v not in (None, "")}
        record.extras = "".join(f" {key}={value}" for key, value in extras.items())
        return super().format(record)


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         static_fields={"service": "backupd"})


class StderrHandler(logging.StreamHandler):
    """A stream handler whose own failures (a message that cannot be encoded, a closed stream) are one JSON line,
    not logging's multi-line '--- Logging error ---' traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        line = {"level": "ERROR", "logger": "backupd.logs", "service": "backupd",
                "message": "a log line could not be written", "error": repr(error)[:500],
                "lost_logger": record.name, "lost_level": record.levelname}
        try:
            self.stream.write(json.dumps(line) + "\n")
            self.flush()
        except Exception:   # the stream itself is gone: nothing left to tell
            pass


def _log_uncaught(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("backupd").critical("uncaught exception: %s", kind.__name__, exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "unknown"
    logging.getLogger("backupd").error("uncaught exception in thread %s: %s", name, args.exc_type.__name__,
                                       exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                                       extra={"thread_name": name})


def _log_unraisable(unraisable) -> None:
    kind = unraisable.exc_type
    logging.getLogger("backupd").error("%s: %s", unraisable.err_msg or "Exception ignored", kind.__name__,
                                       exc_info=(kind, unraisable.exc_value, unraisable.exc_traceback),
                                       extra={"object": repr(unraisable.object)[:200]})


def install_exception_hooks() -> None:
    """Route every uncaught or unraisable exception, and every warning, through the root logger."""
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    sys.unraisablehook = _log_unraisable
    logging.captureWarnings(True)


def setup(level: str = "info", fmt: str = "json", stream=None) -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    handler = StderrHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    install_exception_hooks()
    for noisy in ("apscheduler", "googleapiclient.discovery_cache", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
