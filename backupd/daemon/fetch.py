"""The `fetch` and `verify` commands: a stored backup fetched by the daemon (which holds the destinations'
credentials; they never leave it) and streamed to backupctl, or verified here and recorded.

Only root and the daemon's own user may fetch: a member of control_group may trigger and query, but must
not read through a restore files they could not read themselves. Every fetch is logged with the peer."""
from __future__ import annotations

import logging
import os
import time

from ..cancel import Cancelled
from ..destinations.base import DestinationError
from ..jobs.locate import LocateError, listings, locate, open_fetch
from ..jobs.verify import DEFAULT_SAMPLE, verify_backup
from .commands import CommandError, Streamed, check_args
from .stream import send_stream
from .verifier import announce

log = logging.getLogger("backupd.control")
NEEDS_ROOT = "restoring needs root (or the backupd user)"
UNKNOWN_SIZE_LIMIT = 1 << 40        # the cap on a stream whose size nobody recorded
MAX_SAMPLE = 100_000
PROGRESS_EVERY = 0.5
FETCH_ARGS = {"backup": ((str,), None), "destination": ((str, type(None)), None)}
VERIFY_ARGS = {**FETCH_ARGS, "sample": ((int, type(None)), None)}


def _describe(exc: Exception) -> str | None:
    """The message a stream's error frame carries (None: an unexpected error, reported as internal)."""
    if isinstance(exc, (DestinationError, Cancelled)):
        return str(exc) or "the daemon is stopping"
    return None


class FetchHandlers:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    def table(self) -> dict:
        return {"fetch": self.fetch, "verify": self.verify}

    @staticmethod
    def may_read(peer) -> bool:
        return peer.uid in (0, os.getuid())

    def _locate(self, args: dict):
        config = self.daemon.config
        try:
            return locate(args["backup"], config, self.daemon.history.runs(),
                          lambda: listings(config, config.daemon.state_dir, args["destination"]), args["destination"])
        except LocateError as exc:
            raise CommandError(str(exc), code="not_found") from None

    def _refuse(self, peer, what: str, message: str) -> None:
        log.warning("%s refused to uid %d: not root or the daemon's user", what, peer.uid,
                    extra={"peer_uid": peer.uid, "peer_pid": peer.pid, "command": what, "audit": "refused"})
        raise CommandError(message, code="not_permitted")

    def fetch(self, args, peer, emit) -> dict:
        args = check_args(args, FETCH_ARGS)
        if not self.may_read(peer):
            self._refuse(peer, "fetch", NEEDS_ROOT)
        found = self._locate(args)
        config = self.daemon.config
        try:
            fetched = open_fetch(found, config, config.daemon.state_dir)
        except LocateError as exc:
            raise CommandError(str(exc), code="not_found") from None
        extra = {"peer_uid": peer.uid, "peer_pid": peer.pid, "archive": found.name, "destination": fetched.name,
                 "run_id": found.run_id, "audit": "fetch"}
        log.info("fetch of %s from %s for uid %d", found.name, fetched.name, peer.uid, extra=extra)
        started = time.monotonic()

        def send(conn) -> None:
            limit = found.size if found.size is not None else UNKNOWN_SIZE_LIMIT
            trailer = send_stream(conn, fetched.chunks, limit, _describe)
            log.info("fetch ended", extra={**extra, **trailer, "audit": "fetched",
                                           "seconds": round(time.monotonic() - started, 3)})

        return Streamed({"stream": True, **found.to_dict(), "destination": fetched.name}, send, fetched.close)

    def verify(self, args, peer, emit) -> dict:
        args = check_args(args, VERIFY_ARGS)
        sample = args["sample"]
        if sample is not None and not self.may_read(peer):
            self._refuse(peer, "verify --against-source", "verify --against-source needs root (or the backupd "
                                                         "user): it reads the live source's files")
        if sample is not None and not 1 <= sample <= MAX_SAMPLE:
            raise CommandError(f"sample must be a whole number from 1 to {MAX_SAMPLE}", code="bad_args")
        found = self._locate(args)
        config = self.daemon.config
        log.info("verify of %s for uid %d", found.name, peer.uid,
                 extra={"peer_uid": peer.uid, "peer_pid": peer.pid, "archive": found.name, "audit": "verify"})
        try:
            record = verify_backup(found, config, config.daemon.state_dir, sample=sample or 0,
                                   progress=_Progress(emit, found))
        except LocateError as exc:
            raise CommandError(str(exc), code="not_found") from None
        self.daemon.history.save_verification(record)
        announce([record], config, self.daemon.metrics_changed)
        return record.to_dict()


class _Progress:
    """Progress events of a verification (compressed bytes read), at most one every PROGRESS_EVERY s."""

    def __init__(self, emit, found) -> None:
        self.emit, self.found, self.last = emit, found, 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        total = self.found.size
        self.emit({"type": "progress", "job": self.found.job, "run_id": self.found.run_id,
                   "stage": f"verifying {self.found.name}", "bytes_done": done, "bytes_total": total,
                   "percent": round(100.0 * min(done, total) / total, 1) if total else None})


__all__ = ["DEFAULT_SAMPLE", "FetchHandlers", "NEEDS_ROOT"]
