"""What keeps a request from its result, as the client raises it: every message one line."""
from __future__ import annotations

from ..daemon import protocol as proto
from .call import Busy, NoAnswer

TYPE_CHECKING = False       # as typing.TYPE_CHECKING, without importing typing at backupctl's start
if TYPE_CHECKING:
    from .results import RunRecord

# DaemonUnreachable.reason: how the daemon failed to answer
UNREACHABLE, BUSY, SILENT, GARBLED = "unreachable", "busy", "silent", "garbled"


class ClientError(Exception):
    """Anything that kept a request from its result; the message is one line."""


class DaemonUnreachable(ClientError):
    """No daemon answered at the socket; `reason` says how: UNREACHABLE (nothing to connect to: not running),
    BUSY (busy for the whole timeout), SILENT (no answer in time, or it stopped answering), GARBLED."""

    def __init__(self, message: str, reason: str = UNREACHABLE) -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDenied(ClientError):
    """The socket or the daemon refused this user: it must be root, the daemon's user or in its control group."""


class RemoteError(ClientError):
    """The daemon answered with an error: `code` says what kind ('failed', 'bad_args', ...), `details` more."""

    def __init__(self, message: str, code: str = "failed", details: dict | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, details or {}


class BackupFailed(ClientError):
    """A run waited for ended without success; `record` says how (record.error: category and message)."""

    def __init__(self, record: "RunRecord") -> None:
        error = record.error
        why = f"{error.category}: {error.message}" if error else "no error recorded"
        super().__init__(f"run {record.run_id} of job {record.job} {record.status}: {why}")
        self.record = record


def _answered_no(exc: proto.RemoteError, socket: str) -> ClientError:
    if exc.code == "not_permitted":
        return PermissionDenied(f"the daemon at {socket} refused this user ({exc.message}): be root, its user, or "
                                "in its control group")
    return RemoteError(exc.message, exc.code, exc.details)


# the failures of one request, most specific first -> the ClientError it is (exception, socket path)
_TRANSLATIONS = (
    (proto.RemoteError, _answered_no),
    (PermissionError, lambda exc, socket: PermissionDenied(
        f"cannot open the control socket {socket}: {exc.strerror}; be root, the daemon's user, or in its control "
        "group")),
    (Busy, lambda exc, socket: DaemonUnreachable(f"the daemon at {socket} is busy: {exc}", BUSY)),
    (NoAnswer, lambda exc, socket: DaemonUnreachable(f"the daemon at {socket} {exc}", SILENT)),
    (proto.ProtocolError, lambda exc, socket: DaemonUnreachable(
        f"the daemon at {socket} did not answer properly: {exc}", GARBLED)),
    (OSError, lambda exc, socket: DaemonUnreachable(
        f"cannot reach the daemon at {socket}: {exc.strerror or exc}; is it running?", UNREACHABLE)),
)
FAILURES = tuple(kind for kind, _ in _TRANSLATIONS)     # what a request may raise besides a ClientError


def client_error(exc: BaseException, socket: str) -> ClientError:
    """The ClientError that `exc`, raised by a request to `socket`, is (one of FAILURES)."""
    return next(translate(exc, socket) for kind, translate in _TRANSLATIONS if isinstance(exc, kind))
