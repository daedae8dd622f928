"""The daemon's life: start, serve, reload (validate, then swap), stop. Signal handlers only record."""
from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path
from typing import IO, Callable, Sequence

from .. import config as config_module
from .. import logs
from ..jobs.actions.recover import recover_at_start
from ..jobs import notify, owed_alerts
from ..jobs.history import History
from ..jobs.result import Trigger
from ..jobs.spool import Spool
from . import status
from .control import Authorizer, ControlServer
from .handlers import Handlers
from .listener import Listener, open_listener
from .monitor import CHECK_EVERY, Monitor
from .runs import RunManager
from .scheduler import Scheduler, TriggerFor, cron_trigger, verify_cron_trigger
from .stop_budget import StopBudget
from .verifier import Verifications
from .systemd import Notifier, Watchdog, watchdog_interval

log = logging.getLogger("backupd.daemon")
ACTIVE_REFRESH = 2.0   # STATUS= refresh while a run is going; idle, the loop sleeps until something happens
PING_TIMEOUT = 2.0     # the control loop must answer the watchdog's ping within this


# ---- health probes: the watchdog pings only while every probe answers True --------------------------------------
HealthProbe = Callable[["Daemon"], bool]


def scheduler_alive(daemon: "Daemon") -> bool:
    return daemon.scheduler is not None and daemon.scheduler.healthy()


def control_answers(daemon: "Daemon") -> bool:
    return daemon.control is not None and daemon.control.ping(timeout=PING_TIMEOUT)


DEFAULT_HEALTH_PROBES: tuple[HealthProbe, ...] = (scheduler_alive, control_answers)


class Daemon:
    def __init__(self, config: config_module.Config, run_at_start: bool = False,
                 trigger_for: TriggerFor = cron_trigger,
                 health_probes: Sequence[HealthProbe] = DEFAULT_HEALTH_PROBES,
                 verify_trigger_for: TriggerFor = verify_cron_trigger):
        self.config = config
        self.run_at_start = run_at_start
        self.trigger_for, self.verify_trigger_for = trigger_for, verify_trigger_for
        self.health_probes = tuple(health_probes)
        self.notifier = Notifier()
        self.started_monotonic = time.monotonic()
        self._reload_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self.reload_error: str | None = None
        # made by start(), in this order
        self._lock_file: IO[str] | None = None
        self.history: History | None = None
        self.runs: RunManager | None = None
        self.scheduler: Scheduler | None = None
        self.monitor: Monitor | None = None
        self.verifications: Verifications | None = None
        self.listener: Listener | None = None
        self.control: ControlServer | None = None
        self.watchdog: Watchdog | None = None
        self._signals: _SignalRecorder | None = None

    # ---- start -------------------------------------------------------------------------------
    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._signals = _SignalRecorder(self._wake_w)   # a SIGTERM during start is kept for serve()
        state_dir = self.config.daemon.state_dir
        self.notifier.status("recovering interrupted runs")
        self._lock_state_dir(state_dir)
        self.history = History(state_dir)
        interrupted = recover_at_start(self.config, self.history)   # also cleans the destinations' debris
        if interrupted:
            log.warning("runs interrupted by the last stop", extra={"run_ids": interrupted})
        owed_alerts.send_owed(self.config, self.history)    # their on_failure and /fail, before any new run's
        self.history.release_held()      # a start reads the configuration anew, as a reload does
        keep = {item["archive"] for item in self.history.pending()}
        Spool(state_dir).clean(keep)
        self.runs = RunManager(self.history, lambda: self.config, lambda: (self.wake(), self.metrics_changed()))
        self.verifications = Verifications(self.history, lambda: self.config, self.metrics_changed)
        self.scheduler = Scheduler(self._fire, self.history, self.trigger_for, on_verify=self.verifications.start,
                                   verify_trigger_for=self.verify_trigger_for)
        self.listener = open_listener(self.config.daemon.socket, self.config.daemon.control_group)
        due = self.scheduler.catch_up(self.config)
        self.scheduler.start(self.config)
        self.monitor = Monitor(lambda: self.config, self.history, self.scheduler.next_run)
        self.scheduler.every("monitor", CHECK_EVERY, self.monitor.changed)
        self.monitor.start()     # the first stale check and metrics file, in the monitor's thread
        # served only once the scheduler runs; earlier connections wait in the listen backlog
        self.control = ControlServer(self.listener.socket, Handlers(self).table(),
                                     Authorizer(self.config.daemon.control_group))
        self.control.start()
        self._start_watchdog()
        self.notifier.ready(self.status_text())
        log.info("daemon ready", extra={"pid": os.getpid(), "config": str(self.config.path),
                                        "socket": str(self.listener.path), "activated": self.listener.activated,
                                        "jobs": list(self.config.jobs)})
        self._initial_runs(due)

    def _lock_state_dir(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(state_dir / "daemon.lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.error("another backupd is already running on this state directory", extra={"state_dir": str(state_dir)})
            raise SystemExit(1) from None

    def _initial_runs(self, due: list[str]) -> None:
        for name in due:
            self._fire(name, Trigger.CATCH_UP)
        if self.run_at_start:
            for name in self.config.jobs:
                self._fire(name, Trigger.MANUAL)

    def _fire(self, job_name: str, trigger: str) -> None:
        try:
            self.runs.start(job_name, trigger)
        except Exception:
            log.exception("could not start a run", extra={"job": job_name, "trigger": trigger})

    def _start_watchdog(self) -> None:
        interval = watchdog_interval()
        self.watchdog = Watchdog(self.notifier, interval, self.healthy) if interval else None
        if self.watchdog:
            self.watchdog.start()

    def healthy(self) -> bool:
        """Every health probe says so (by default: the scheduler thread is alive, the control loop answers)."""
        return all(probe(self) for probe in self.health_probes)

    # ---- the main loop -----------------------------------------------------------------------
    def serve(self) -> int:
        """Block until SIGTERM/SIGINT; handle SIGHUP as reload. Returns the exit code."""
        signals = self._signals or _SignalRecorder(self._wake_w)
        try:
            while True:
                self.notifier.status(self.status_text())
                self._wait_for_wake()
                for signum in signals.take(self._wake_r):
                    if signum == signal.SIGHUP:
                        log.info("reload requested", extra={"signal": "SIGHUP"})
                        self.reload()
                    elif signum in (signal.SIGTERM, signal.SIGINT):
                        return self.stop(signals)
        finally:
            signals.restore()

    def _wait_for_wake(self) -> None:
        timeout = ACTIVE_REFRESH if self.runs.all_active() else None
        select.select([self._wake_r], [], [], timeout)

    def wake(self) -> None:
        """Ask the main loop to refresh STATUS= (called from other threads)."""
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def status_text(self) -> str:
        return status.text(self)

    def metrics_changed(self) -> None:
        """What the metrics file and the stale checks read has changed (a run, a prune, a verification, a
        reload): refresh them soon, in the monitor's thread, never the caller's."""
        if self.monitor is not None:
            self.monitor.changed()

    # ---- reload ------------------------------------------------------------------------------
    def reload(self) -> list[str]:
        """Parse and validate the config aside; swap it in only if valid. Returns the errors, if any."""
        with self._reload_lock:
            self.notifier.reloading("reloading configuration")
            try:
                new = config_module.load(self.config.path)
            except config_module.ConfigError as exc:
                self.reload_error = f"reload failed, kept the old configuration: {exc.errors[0]}"
                log.error("reload failed", extra={"errors": exc.errors, "config": str(exc.path)})
                self.notifier.ready(self.status_text())
                return [f"{exc.path}: {error}" for error in exc.errors]
            self._swap(new)
            self.notifier.ready(self.status_text())
            return []

    def _swap(self, new: config_module.Config) -> None:
        if new.daemon.socket != self.config.daemon.socket or new.daemon.state_dir != self.config.daemon.state_dir:
            log.warning("socket and state_dir changes take effect at the next restart")
        logs.setup(new.daemon.log_level, new.daemon.log_format)
        self.scheduler.apply(new)
        self.config = new
        self.reload_error = None
        released = self.history.release_held()    # uploads that failed permanently: the next run retries them
        log.info("configuration reloaded", extra={"summary": new.summary(), "released_uploads": released})
        self.metrics_changed()

    # ---- stop --------------------------------------------------------------------------------
    def stop(self, signals: "_SignalRecorder") -> int:
        self.notifier.stopping("stopping: cancelling runs in progress")
        log.info("daemon stopping")
        signals.exit_on_next()
        self.scheduler.shutdown()
        budget = StopBudget.starting(self.config.daemon.stop_timeout)     # one deadline for all that follows
        self.verifications.cancel()          # they wind down alongside the runs
        all_ended = self.runs.stop(budget.for_work())
        if not self.verifications.wait(budget.for_work()):
            log.warning("verifications did not stop in time; their results are not recorded",
                        extra={"jobs": self.verifications.active()})
        if not all_ended:
            log.error("runs did not stop in time; recorded as interrupted, their temporary files removed",
                      extra={"timeout": self.config.daemon.stop_timeout})
            abandoned = [run.run_id for run in self.runs.all_active() if run.abandon()]
            owed_alerts.send_at_stop(self.config, self.history, abandoned, budget.ends)
        notify.drain(budget.left())          # the hooks and pings of the runs just ended
        self.monitor.stop()
        self.control.stop()
        self.listener.close()
        if self.watchdog:
            self.watchdog.stop()
        self.history.close()
        log.info("daemon stopped")
        return 0


class _SignalRecorder:
    """Handlers only record: set_wakeup_fd writes the signal number to the wake socket."""

    HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, wake_w: socket.socket):
        self._old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)   # before the handlers:
        self._previous = {signum: signal.signal(signum, self._record) for signum in self.HANDLED}  # none lost
        self._exit_now = False

    def _record(self, signum, frame) -> None:
        if self._exit_now:
            os._exit(128 + signum)

    def take(self, wake_r: socket.socket) -> list[int]:
        wake_r.setblocking(False)
        try:
            data = wake_r.recv(4096)
        except BlockingIOError:
            return []
        return [byte for byte in data if byte]

    def exit_on_next(self) -> None:
        """From now on a second SIGTERM/SIGINT ends the process at once."""
        self._exit_now = True

    def restore(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
