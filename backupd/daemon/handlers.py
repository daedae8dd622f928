"""The control socket's commands: name -> handler(args, peer, emit) -> result dict."""
from __future__ import annotations

import logging
import os
import time

from .. import __version__
from ..destinations import registry as destination_registry
from ..destinations.base import DestinationError
from ..jobs.actions import spooled
from ..jobs.freshness import judge
from ..jobs.actions.prune import PruneContext, prune as prune_destinations
from ..jobs.result import Status, Trigger
from ..jobs.runner import Action
from ..jobs.spool import Spool
from ..util.clock import iso
from ..util.names import FULL, base_run_of, kind_of, run_in_name
from . import protocol as proto
from .control import CommandError, check_args
from .fetch import FetchHandlers
from .runs import Busy

log = logging.getLogger("backupd.control")
PROGRESS_EVERY = 0.5
JOINED_NOT_FULL = "the run going on was not asked for a new full: ask again once it ended"
CHECK_ARGS = {"job": ((str, type(None)), None), "max_age": ((int, float, type(None)), None)}
PRUNE_ARGS = {"job": ((str, type(None)), None), "destination": ((str, type(None)), None),
              "dry_run": ((bool,), False)}


def run8_of(item: dict) -> str:
    """The first 8 digits of a listed backup's run id: from its sidecar or metadata, else from its name."""
    return (item.get("run_id") or run_in_name(item["name"]))[:8]


def with_sets(stored: list) -> list[dict]:
    """One destination's backups as dicts, each with its kind; a differential also with its full's run id
    (base_run) and, when that full is listed too, its name (base) and the set's size so far (the full and its
    differentials up to this one). Without its full a differential cannot be restored."""
    items = [{**backup.to_dict(), "kind": kind_of(backup.name)} for backup in stored]
    fulls = {(item.get("job", ""), run8_of(item)): item for item in items if item["kind"] == FULL}
    so_far: dict[str, int] = {}     # a full's name -> the bytes of its set up to the differential at hand
    for item in sorted(items, key=lambda item: item["name"]):
        if item["kind"] == FULL:
            item["set_size"] = item["size"]
            continue
        item["base_run"] = base_run_of(item["name"])
        full = fulls.get((item.get("job", ""), item["base_run"][:8]))
        if full is not None:
            so_far[full["name"]] = so_far.get(full["name"], full["size"]) + item["size"]
            item.update(base=full["name"], set_size=so_far[full["name"]])
    return items


def progress_of(run) -> dict:
    progress = run.progress
    return {"run_id": run.run_id, "job": run.job.name, "stage": progress.stage,
            "bytes_done": progress.done, "bytes_total": progress.bytes_total,
            "percent": progress.percent}


class Handlers:
    def __init__(self, daemon):
        self.daemon = daemon

    def table(self) -> dict:
        return {"status": self.status, "trigger": self.trigger, "history": self.history,
                "list": self.list_backups, "reload": self.reload, "prune": self.prune,
                "check": self.check,
                **FetchHandlers(self.daemon).table()}

    def status(self, args, peer, emit) -> dict:
        daemon = self.daemon
        return {"version": __version__, "pid": os.getpid(),
                "uptime_s": round(time.monotonic() - daemon.started_monotonic, 1),
                "config": str(daemon.config.path), "status_text": daemon.status_text(),
                "jobs": [self._job_status(job) for job in daemon.config.jobs.values()], "spool": self._spool()}

    def _spool(self) -> dict:
        """What waits in the spool for an upload, why, and its bound."""
        settings = self.daemon.config.daemon
        spool = Spool(settings.state_dir)
        return spooled.report(self.daemon.history, spool, spool.limit(settings.spool_max))

    def _job_status(self, job) -> dict:
        finished = [r for r in self.daemon.history.runs(job.name, limit=3) if r.status != Status.RUNNING]
        active = self.daemon.runs.active(job.name)
        return {"name": job.name, "schedule": job.schedule, "timezone": job.timezone,
                "next_run": iso(self.daemon.scheduler.next_run(job.name)),
                "last_run": finished[0].to_dict() if finished else None,
                "running": progress_of(active) if active else None,
                "pending_uploads": len(self.daemon.history.pending(job.name)), "differential": job.differential,
                **self._freshness(job)}

    def _freshness(self, job) -> dict:
        """Seconds since the job's last success, and whether that is past its alert_after."""
        age = judge(job, self.daemon.history).age
        overdue = (self.daemon.history.stale_since(job.name) is not None if age is None
                   else job.alert_after is not None and age > job.alert_after)
        return {"last_success_age_s": age, "alert_after": job.alert_after, "overdue": overdue}

    def check(self, args, peer, emit) -> dict:
        """Each (or one) job's freshness, for Nagios-style checks: ok when every job's is."""
        args = check_args(args, CHECK_ARGS)
        if args["max_age"] is not None and not 0 < args["max_age"] < float("inf"):
            raise CommandError("max_age must be a positive number of seconds", code="bad_args")
        names = [self._job_name(args["job"])] if args["job"] is not None else list(self.daemon.config.jobs)
        jobs = [judge(self.daemon.config.jobs[name], self.daemon.history, max_age=args["max_age"]).to_dict()
                for name in names]
        return {"ok": all(job["state"] == "OK" for job in jobs), "jobs": jobs}

    def trigger(self, args, peer, emit) -> dict:
        job_name = self._job_name(args.get("job"))
        full = bool(args.get("full"))
        if full and args.get("upload_pending"):
            raise CommandError("full and upload_pending do not go together: upload_pending makes no backup",
                               code="bad_args")
        try:
            action = Action.UPLOAD_PENDING if args.get("upload_pending") else Action.BACKUP
            run, started = self.daemon.runs.start(job_name, Trigger.MANUAL, action, full=full)
        except Busy as exc:
            raise CommandError(str(exc)) from None
        log.info("trigger", extra={"job": job_name, "run_id": run.run_id, "started": started, "full": run.full,
                                   "peer_uid": peer.uid, "peer_pid": peer.pid})
        if not args.get("wait"):
            return {"run_id": run.run_id, "job": job_name, "started": started, "full": run.full,
                    **({"note": JOINED_NOT_FULL} if full and not run.full else {})}
        while not self.daemon.runs.wait(run, timeout=PROGRESS_EVERY):
            emit({"type": "progress", **progress_of(run)})
        return run.record.to_dict()

    def _job_name(self, requested) -> str:
        jobs = self.daemon.config.jobs
        if requested is None:
            if len(jobs) != 1:
                raise CommandError(f"name a job: this daemon has {len(jobs)} ({', '.join(jobs) or 'none'})")
            return next(iter(jobs))
        if requested not in jobs:
            raise CommandError(f"no job named {requested!r}; jobs: {', '.join(jobs) or 'none'}")
        return requested

    def history(self, args, peer, emit) -> dict:
        limit = args.get("limit") or proto.HISTORY_LIMIT
        if not isinstance(limit, int) or not 1 <= limit <= proto.HISTORY_MAX:
            raise CommandError(f"limit must be a whole number from 1 to {proto.HISTORY_MAX}")
        job = args.get("job")
        if job is not None:
            self._job_name(job)
        return {"runs": [record.to_dict() for record in self.daemon.history.runs(job, limit)]}

    def list_backups(self, args, peer, emit) -> dict:
        config = self.daemon.config
        wanted = args.get("destination")
        if wanted is not None and wanted not in config.destinations:
            raise CommandError(f"no destination named {wanted!r}; destinations: {', '.join(config.destinations)}")
        backups, errors = [], []
        for name, dest_config in config.destinations.items():
            if wanted in (None, name):
                self._list_one(dest_config, args.get("job"), backups, errors)
        if errors and not backups:
            raise CommandError("; ".join(errors))
        return {"backups": backups, "errors": errors}

    def _list_one(self, dest_config, job, backups: list, errors: list) -> None:
        destination = destination_registry.build(dest_config, self.daemon.config.daemon.state_dir)
        try:
            backups += [{"destination": dest_config.name, **item} for item in with_sets(destination.list(job))]
        except DestinationError as exc:
            errors.append(f"destination '{dest_config.name}': {exc}")
        finally:
            destination.close()

    def prune(self, args, peer, emit) -> dict:
        """Apply the keep policy of one job (or every job) at its destinations (or one of them)."""
        args = check_args(args, PRUNE_ARGS)
        config = self.daemon.config
        jobs = [self._job_name(args["job"])] if args["job"] is not None else list(config.jobs)
        wanted = args["destination"]
        if wanted is not None and not any(wanted in config.jobs[name].destinations for name in jobs):
            raise CommandError(f"no job here ({', '.join(jobs) or 'none'}) stores on a destination named {wanted!r}")
        plans = []
        for name in jobs:
            job = config.jobs[name]
            context = PruneContext(job=job, history=self.daemon.history, state_dir=config.daemon.state_dir,
                                   by=f"backupctl prune (uid {peer.uid})", log_extra={"peer_uid": peer.uid},
                                   dry_run=args["dry_run"])
            targets = [config.destinations[d] for d in job.destinations if wanted in (None, d)]
            plans += [{"job": name, "policy": job.keep.describe(), **plan.to_dict()}
                      for plan in prune_destinations(context, targets)]
        self.daemon.metrics_changed()
        return {"dry_run": args["dry_run"], "plans": plans}

    def reload(self, args, peer, emit) -> dict:
        log.info("reload requested", extra={"peer_uid": peer.uid})
        errors = self.daemon.reload()
        if errors:
            raise CommandError("the new configuration is invalid; still running the old one",
                               details={"errors": errors})
        return {"summary": self.daemon.config.summary()}
