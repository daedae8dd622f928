"""Helpers about the writer's inputs: member names, paths for messages, streams that only offer read()."""
from __future__ import annotations

import os
import re
from typing import BinaryIO

# a name that fits a plain ustar name field and a JSON string without escaping: at most 100 printable
# ASCII characters, none of them '"' or '\\'
PLAIN_NAME = re.compile(r'[ !#-\[\]-~]{0,100}')


def shown_path(path: str, dir_fd: int | None) -> str:
    """The full path of `path` relative to `dir_fd`, for messages (only built when one is needed)."""
    if dir_fd is None or path.startswith("/"):
        return path
    try:
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    except OSError:
        return path


def readinto_from_read(stream: BinaryIO):
    """A readinto(view) for streams that only offer read(n)."""
    def readinto(view: memoryview) -> int:
        data = stream.read(len(view))
        view[:len(data)] = data
        return len(data)
    return readinto
