"""Set-up commands the destination types provide, by name (`backupctl drive-login`, `backupd drive-login`).

Importing this module is cheap: a command's module loads only when the command runs. A new destination type
with a set-up step (an S3 key, an SFTP host key) adds its SETUP_COMMANDS table here."""
from __future__ import annotations

from ..lazy import load_class
from .base import SetupCommand
from .gdrive import SETUP_COMMANDS as GDRIVE_COMMANDS

SETUP_COMMANDS: dict[str, SetupCommand] = {**GDRIVE_COMMANDS}


def run_setup_command(name: str, argv: list[str]) -> int:
    """Run the set-up command `name` with its arguments; returns its exit code. ImportError if the
    command's libraries are not installed."""
    return load_class(SETUP_COMMANDS[name].target)(argv)
