"""Destination type name -> lazy import string: the Google client loads only when a gdrive
destination is actually used."""
from __future__ import annotations

from pathlib import Path

from ..config import DestinationConfig
from ..lazy import load_class

TYPES = {
    "local": "backupd.destinations.local:LocalDestination",
    "gdrive": "backupd.destinations.gdrive.destination:DriveDestination",
}


def build(config: DestinationConfig, state_dir: Path, cancel=None):
    """A fresh Destination for one run (or one query)."""
    return load_class(TYPES[config.type])(config, state_dir=state_dir, cancel=cancel)
