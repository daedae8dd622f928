"""Who is on the other end of a control connection (SO_PEERCRED, supplementary groups) and whether to serve them."""
from __future__ import annotations

import grp
import logging
import os
import socket
import struct
from dataclasses import dataclass

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; Python does not export it
_CRED = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: frozenset = frozenset()


def _socket_groups(conn: socket.socket) -> frozenset | None:
    try:
        # 1024 is the largest buffer Python's getsockopt accepts: 256 groups; more -> ERANGE -> /proc fallback
        raw = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)
    except OSError:
        return None
    return frozenset(struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))


def _proc_groups(pid: int) -> frozenset:
    """Supplementary groups from /proc/<pid>/status (fallback when SO_PEERGROUPS is unavailable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return frozenset()


def peer_of(conn: socket.socket) -> Peer:
    """The connecting process's pid, uid, gid (SO_PEERCRED) and supplementary groups."""
    pid, uid, gid = _CRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    groups = _socket_groups(conn)
    return Peer(pid, uid, gid, groups if groups is not None else _proc_groups(pid))


class Authorizer:
    """Root, the daemon's own uid and members of control_group (primary or supplementary) are served."""

    def __init__(self, control_group: str | None, own_uid: int | None = None, log: logging.Logger | None = None):
        self.own_uid = os.getuid() if own_uid is None else own_uid
        self.gid = None
        if control_group:
            try:
                self.gid = grp.getgrnam(control_group).gr_gid
            except KeyError:
                (log or logging.getLogger("backupd.control")).warning(
                    "control group %r does not exist: only root and uid %d may use the socket",
                    control_group, self.own_uid)

    def __call__(self, peer: Peer) -> bool:
        if peer.uid in (0, self.own_uid):
            return True
        return self.gid is not None and (peer.gid == self.gid or self.gid in peer.groups)
