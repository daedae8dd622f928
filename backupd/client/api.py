"""The Client: one daemon's control socket; request() gives the daemon's answer as a dict (backupctl uses only
that), the typed calls build results from it."""
from __future__ import annotations

import os

from ..daemon import protocol as proto
from .call import DEFAULT_TIMEOUT, Request, socket_path
from .errors import FAILURES, BackupFailed, RemoteError, client_error

TYPE_CHECKING = False       # as typing.TYPE_CHECKING, without importing typing at backupctl's start
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from .results import DaemonStatus, Listing, Progress, RunRecord, Started


def _results():
    """The results module, imported at the first typed call (its dataclasses cost start-up time)."""
    from . import results
    return results


class Client:
    """One daemon's control socket. `timeout`: seconds the daemon may take to answer (while a trigger waits:
    may stay silent; it reports progress twice a second). A busy daemon is asked again within the timeout."""

    def __init__(self, socket: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket = socket_path(socket)
        self.timeout = timeout

    def request(self, command: str, args: dict | None = None, on_event: Callable[[dict], None] | None = None,
                waiting: bool = False) -> dict:
        """One request as the daemon answers it (a dict): what the typed methods and `backupctl` use. Events
        (progress) go to on_event as dicts; with `waiting`, the timeout applies between them."""
        call = Request(self.socket, command, args or {}, self.timeout, on_event, between_events=waiting)
        try:
            return call.send()
        except FAILURES as exc:
            raise client_error(exc, self.socket) from None

    def status(self) -> DaemonStatus:
        """The daemon, and each job's schedule, next run, newest finished run and run in progress."""
        return self._parse("status", _results().DaemonStatus.from_dict, self.request("status"))

    def trigger(self, job: str | None = None, wait: bool = False,
                on_progress: Callable[[Progress], None] | None = None,
                upload_pending: bool = False, full: bool = False) -> RunRecord | Started:
        """Start a run of `job` (None: the only job); `full`: a differential job makes a new full. With `wait`,
        return its RunRecord once it ended, calling on_progress(Progress) as it goes, and raise BackupFailed if it
        did not succeed. A run of the job already going is joined, not doubled (Started.full says whether it
        was asked for a full)."""
        results = _results()

        def event(data: dict) -> None:
            if on_progress is not None and data.get("type") == "progress":
                on_progress(self._parse("a progress event", results.Progress._from, data))
        args = {"job": job, "wait": wait, "upload_pending": upload_pending, "full": full}
        result = self.request("trigger", args, on_event=event, waiting=wait)
        if not wait:
            return self._parse("trigger", results.Started._from, result)
        record = self._parse("trigger", results.RunRecord.from_dict, result)
        if not record.ok:
            raise BackupFailed(record)
        return record

    def history(self, job: str | None = None, limit: int = proto.HISTORY_LIMIT) -> list[RunRecord]:
        """The newest `limit` runs (of `job`, or of every job), newest first."""
        result = self.request("history", {"job": job, "limit": limit})
        build = _results().RunRecord.from_dict
        return self._parse("history", lambda data: [build(run) for run in data["runs"]], result)

    def list_backups(self, job: str | None = None, destination: str | None = None) -> Listing:
        """The archives present at each destination (or at `destination`), with what could not be listed."""
        result = self.request("list", {"job": job, "destination": destination})
        results = _results()
        return self._parse("list", lambda data: results.Listing(
            backups=tuple(results.StoredBackup._from(item) for item in data["backups"]),
            errors=tuple(str(error) for error in data.get("errors") or ())), result)

    def next_run(self, job: str | None = None) -> datetime | None:
        """When `job` runs next by its schedule (None: the soonest of all jobs); None if nothing is scheduled."""
        status = self.status()
        jobs = [status.job(job)] if job is not None else status.jobs
        return min((j.next_run for j in jobs if j.next_run is not None), default=None)

    @staticmethod
    def _parse(what: str, build, data):
        try:
            return build(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RemoteError(f"the daemon's reply to {what} has an unexpected shape ({type(exc).__name__}: "
                              f"{exc})", "bad_reply") from None
