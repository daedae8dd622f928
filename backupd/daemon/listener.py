"""The control socket: the one systemd hands over (never unlinked by us), or one we bind and remove."""
from __future__ import annotations

import grp
import logging
import os
import socket
from pathlib import Path

from .systemd import listen_fds

log = logging.getLogger("backupd.daemon")
# Connections the kernel queues before the daemon accepts them: a burst of backupctl runs must not find the queue
# full (connect fails with EAGAIN). The kernel caps it at net.core.somaxconn (4096 by default); packaging's
# backupd.socket sets the same Backlog= for the socket systemd makes.
BACKLOG = 4096


class Listener:
    def __init__(self, sock: socket.socket, path: Path, activated: bool):
        self.socket = sock
        self.path = path
        self.activated = activated

    def close(self) -> None:
        """Close; remove the socket file only if this process created it."""
        self.socket.close()
        if not self.activated:
            self.path.unlink(missing_ok=True)


def open_listener(path: Path, control_group: str) -> Listener:
    inherited = listen_fds()
    if inherited:
        sock = inherited[0]
        for extra in inherited[1:]:
            extra.close()
        name = sock.getsockname()
        return Listener(sock, Path(name) if isinstance(name, str) and name else path, activated=True)
    return Listener(_bind(path, control_group), path, activated=False)


def _bind(path: Path, control_group: str) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        _refuse_if_live(path)
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o117)   # created 0660, never briefly wider
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    _set_group(path, control_group)
    sock.listen(BACKLOG)
    return sock


def _refuse_if_live(path: Path) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return   # stale socket file from a dead daemon
    finally:
        probe.close()
    log.error("the control socket is served by another running daemon", extra={"socket": str(path)})
    raise SystemExit(1)


def _set_group(path: Path, control_group: str) -> None:
    if not control_group:
        return
    try:
        os.chown(path, -1, grp.getgrnam(control_group).gr_gid)
    except KeyError:
        log.warning("control group does not exist; only root and the daemon's user may use the socket",
                    extra={"control_group": control_group})
    except PermissionError:
        log.warning("cannot give the socket to the control group (not root?)",
                    extra={"control_group": control_group})
