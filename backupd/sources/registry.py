"""Source type name -> lazy import string, so a run imports only the source types it uses."""
from __future__ import annotations

from ..config import SourceConfig
from ..lazy import load_class

TYPES = {
    "directory": "backupd.sources.directory:DirectorySource",
    "sqlite": "backupd.sources.sqlite:SqliteSource",
    "command": "backupd.sources.command:CommandSource",
    "python": "backupd.sources.python:PythonSource",
}


def build(config: SourceConfig):
    """A fresh Source object for one run."""
    return load_class(TYPES[config.type])(config)
