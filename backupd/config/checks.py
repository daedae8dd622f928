"""Checks that need more than one key, or a look at the file system: what the daemon relies on at start."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .fields import did_you_mean, label, shown
from .model import DaemonConfig

SOCKET_PATH_MAX = 107   # sockaddr_un.sun_path holds 108 bytes, the terminating NUL included


def daemon_paths(daemon: DaemonConfig, add, unparsed=frozenset()) -> None:
    """The socket can be bound and the state directory created: `add(where, message)` for each problem
    (keys in `unparsed` already have theirs)."""
    if "state_dir" not in unparsed:
        _directory_possible("daemon.state_dir", daemon.state_dir, add)
    if "socket" not in unparsed:
        _socket_possible(daemon.socket, add)


def _socket_possible(socket: Path, add) -> None:
    socket_bytes = len(os.fsencode(socket))
    if socket_bytes > SOCKET_PATH_MAX:
        add("daemon.socket", f"is {socket_bytes} bytes long; a Unix socket path holds at most {SOCKET_PATH_MAX}")
    try:
        mode = os.stat(socket).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        add("daemon.socket", f"{shown(str(socket))} is a directory; name the socket file inside it")
    elif mode is not None and not stat.S_ISSOCK(mode):
        add("daemon.socket", f"{shown(str(socket))} exists and is not a socket")
    _directory_possible("daemon.socket", socket.parent, add)


def _directory_possible(where: str, path: Path, add) -> None:
    blocker = _non_directory(path)
    if blocker is not None:
        add(where, f"{shown(str(blocker))} is not a directory")


def _non_directory(path: Path) -> Path | None:
    """The nearest existing one of `path` and its parents if it is not a directory (None when it is, or
    when it cannot be told: then the daemon creates the rest or reports why it cannot)."""
    for candidate in (path, *path.parents):
        try:
            mode = os.stat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        return None if stat.S_ISDIR(mode) else candidate
    return None


def references(names, section: str, known, where: str, add) -> None:
    """A job's `sources` or `destinations`: at least one, each configured, none twice."""
    if not names:
        add(f"{where}.{section}", f"must name at least one of the configured {section}")
    seen = set()
    for name in names:
        if name not in known:
            add(f"{where}.{section}", f"names unknown {section[:-1]} '{label(name)}'" + did_you_mean(name, known))
        elif name in seen:
            add(f"{where}.{section}", f"names {section[:-1]} '{name}' more than once")
        seen.add(name)


DIFFERENTIAL_ONLY = ("full_every", "detect", "delta_files")


def differential_keys(table: dict, values: dict, where: str, add) -> None:
    """Keys that only mean something for a differential job."""
    if values.get("differential"):
        return
    for name in DIFFERENTIAL_ONLY:
        if name in table and "differential" in values:
            add(f"{where}.{name}", "only applies with differential = true")
