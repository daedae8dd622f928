"""Talk to a running backupd from an application: status, trigger a backup (and wait for it), history, backups
present, next scheduled run. Standard library only (plus backupd's wire protocol): importing it loads neither
the Google libraries nor the scheduler, so an application may install backupd with `pip install --no-deps`.

    from backupd.client import Client, BackupFailed
    client = Client()                                    # $BACKUPD_SOCKET or /run/backupd/backupd.sock
    try:
        record = client.trigger(wait=True, on_progress=lambda p: print(p.stage, p.percent))
        print(record.archive_name, record.link)          # the Drive link, when a gdrive destination has it
    except BackupFailed as failed:
        print(failed.record.error.category, failed.record.error.message)

Every method returns plain frozen dataclasses (to_dict() gives their JSON form) and raises a ClientError:
DaemonUnreachable, PermissionDenied, RemoteError (the daemon said no) or BackupFailed (a waited-for run failed).
Client.request() gives the daemon's answer as a dict, as backupctl uses it.

The parts: call (one request: busy retries, deadlines), errors, api (Client), results (the dataclasses, loaded
when first named here, so that backupctl, which needs only request(), does not pay for building them).
"""
from __future__ import annotations

from .api import Client
from .call import DEFAULT_SOCKET, DEFAULT_TIMEOUT, socket_path
from .errors import BackupFailed, ClientError, DaemonUnreachable, PermissionDenied, RemoteError

RESULTS = ("ArchiveInfo", "DaemonStatus", "DestinationResult", "JobStatus", "Listing", "Progress", "RunError",
           "RunRecord", "Started", "StoredBackup")
__all__ = ["Client", "DEFAULT_SOCKET", "DEFAULT_TIMEOUT", "socket_path", "BackupFailed", "ClientError",
           "DaemonUnreachable", "PermissionDenied", "RemoteError", *RESULTS]


def __getattr__(name: str):
    """The result classes, imported when first asked for (PEP 562)."""
    if name in RESULTS:
        from . import results
        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
