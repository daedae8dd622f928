"""The destination types and their keys: one frozen class per `type`, registered in DESTINATION_TYPES.

These classes are all that validation needs: the Google client is imported only by the gdrive destination
itself, when a run uses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import fields as f
from .model import DestinationConfig
from .schema import key


@dataclass(frozen=True, kw_only=True)
class LocalDestinationConfig(DestinationConfig):
    """A directory on this machine (another disk, an NFS mount)."""

    type = "local"
    path: Path = key(f.path, doc="the directory archives are copied into")


@dataclass(frozen=True, kw_only=True)
class DriveDestinationConfig(DestinationConfig):
    """A Google Drive folder, reached with a service account or an authorized-user file."""

    type = "gdrive"
    credentials: Path | str = key(f.credential_reference,
                                  doc="a path, or a name in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")
    folder: str = key(f.nonempty_string, "backupd", doc="created if missing, under My Drive or the shared drive")
    shared_drive_id: str = key(f.string, "", doc="upload into this shared drive (needed by a service account)")
    impersonate: str = key(f.string, "", doc="a service account with domain-wide delegation acts as this user")
    scope: str = key(f.one_of("drive.file", "drive"), "drive.file", doc="the OAuth scope asked for")
    chunk_size: int = key(f.chunk_size, 8 * 1024 * 1024, doc="a multiple of 256KiB; upload memory is one chunk")
    endpoint: str = key(f.string, "", doc="root URL of another Drive v3 compatible API")
    retry_deadline: float = key(f.duration, 600.0, doc="keep retrying transient faults this long")
    timeout: float = key(f.duration, 60.0,
                         doc="a request to Drive that stays silent this long counts as a network fault")
    bandwidth_limit: int | None = key(f.rate, None, doc="at most this many bytes a second up and down, like "
                                                        "'20MiB/s' (default: as fast as the network goes)")
    trash: bool = key(f.boolean, False, doc="pruning moves archives to the Drive trash (recoverable for 30 days, "
                                            "still counted in the quota) instead of deleting them")


DESTINATION_TYPES: dict[str, type[DestinationConfig]] = {
    cls.type: cls for cls in (LocalDestinationConfig, DriveDestinationConfig)}
