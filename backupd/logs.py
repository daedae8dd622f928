"""Logging setup: one JSON object per line on stderr (journald keeps it), or plain text for a terminal."""
from __future__ import annotations

import logging
import re
import sys

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
        message = record.getMessage()
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


def setup(level: str = "info", fmt: str = "json", stream=None) -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "googleapiclient.discovery_cache", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
