"""backupctl: talk to the backupd daemon over its control socket, through backupd.client's requests (imports only
the stdlib, the protocol and the client's request part)."""
from __future__ import annotations

import json
import os
import sys
import time
from collections import namedtuple

from backupd.client import DEFAULT_SOCKET, DEFAULT_TIMEOUT, Client, DaemonUnreachable, PermissionDenied, RemoteError
from backupd.client.errors import BUSY, UNREACHABLE
from backupd.daemon import protocol as proto

from .ctl_format import FAILED, SHOW, printable, progress_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
REPLY_TIMEOUT = DEFAULT_TIMEOUT   # default --timeout: list may ask a remote destination
# DaemonUnreachable.reason -> what backupctl adds to the client's message
UNREACHABLE_HINTS = {UNREACHABLE: " try: systemctl start backupd.socket", BUSY: "; try again later"}
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)   # a reply this backupctl cannot show
PLAIN_PROGRESS_EVERY = 5.0    # seconds between progress lines when stderr is not a terminal


# -- progress display --------------------------------------------------------------------------------------------
class WaitProgress:
    """Progress of trigger --wait on stderr: one line redrawn in place on a terminal, sparse lines otherwise."""

    def __init__(self, enabled: bool, stream=sys.stderr) -> None:
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and stream.isatty()
        self.last_print, self.last_stage, self.drawn, self.run_id = 0.0, None, False, None

    def __call__(self, event: dict) -> None:
        event = printable(event)
        self.run_id = event.get("run_id") or self.run_id
        if not self.enabled or event.get("type") != "progress":
            return
        try:
            text = progress_text(event)
        except SHAPE_ERRORS:
            return   # an event this backupctl cannot read: skipped; the final reply still says how the run ended
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + text[: self.columns() - 1])
            self.drawn = True
        elif event.get("stage") != self.last_stage or now - self.last_print >= PLAIN_PROGRESS_EVERY:
            self.stream.write(text + "\n")
            self.last_print, self.last_stage = now, event.get("stage")
        self.stream.flush()

    def columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except OSError:  # not a terminal after all
            return 80

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False


# -- command line (a small table-driven parser: argparse alone costs more than the rest of backupctl) -------------
def positive_int(text: str, option: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"option {option}: expected a whole number of at least 1, got {text!r}")
    return int(text)


def history_limit(text: str, option: str) -> int:
    number = positive_int(text, option)
    if number > proto.HISTORY_MAX:
        raise UsageError(f"option {option}: expected a whole number from 1 to {proto.HISTORY_MAX}, got {text!r}")
    return number


def positive_seconds(text: str, option: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f"option {option}: expected a positive number of seconds, got {text!r}")
    return seconds


DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_value(text: str, option: str) -> float:
    """'26h', '90m', '3d', '1w' or a number of seconds."""
    unit = text[-1:] if text[-1:].isalpha() else ""
    try:
        return positive_seconds(text[:len(text) - len(unit)], option) * DURATION_UNITS[unit]
    except (UsageError, KeyError):
        raise UsageError(f"option {option}: expected a duration like 26h, 90m or 3d, got {text!r}") from None


def text_value(text: str, option: str) -> str:
    if not text:
        raise UsageError(f"option {option}: expected a value")
    return text


class Repeated:
    """The converter of an option that may be given more than once: its values are collected in a list."""

    def __init__(self, convert) -> None:
        self.convert = convert

    def __call__(self, text: str, option: str):
        return self.convert(text, option)


# option: (destination, converter or None for a flag, help)
GLOBAL_OPTIONS = {"--socket": ("socket", text_value, f"control socket (default: $BACKUPD_SOCKET or {DEFAULT_SOCKET})"),
                  "--json": ("json", None, "print the machine-readable JSON result"),
                  "--timeout": ("timeout", positive_seconds, f"seconds the daemon has to answer (default "
                                f"{REPLY_TIMEOUT:g}); with trigger --wait, also between progress updates")}
JOB_OPTION = {"--job": ("job", text_value, "only this job")}
FETCH_OPTIONS = {  # restore and verify: fetched through the daemon, or without it (--config, --archive)
    "--destination": ("destination", text_value, "fetch from this destination (default: the first that has "
                                                 "it, local before remote)"),
    "--identity": ("identity", text_value, "age identity file, for an encrypted archive"),
    "--config": ("config", text_value, "without the daemon: read this configuration, its history and "
                                       "credentials directly (as root) and fetch from the destination itself"),
    "--archive": ("archive", text_value, "without configuration or daemon: this archive file (BACKUP omitted)")}
DESTINATION_OPTION = {"--destination": ("destination", text_value, "only this destination")}
# summary: the help line; positional: the request argument a bare word fills, or None; options: as
# GLOBAL_OPTIONS; request: the request arguments sent to the daemon, with their defaults; exclusive: options
# that cannot be given together (the usage shows one line for each)
Command = namedtuple("Command", "summary positional options request exclusive", defaults=((),))
COMMANDS = {
    "status": Command("daemon, jobs, next runs, last results, run in progress", None, {}, {}),
    "trigger": Command("start a backup run of JOB (may be omitted when there is only one job)", "job",
                       {"--wait": ("wait", None, "show progress and end with the run's result"),
                        "--upload-pending": ("upload_pending", None, "only retry uploads that are pending"),
                        "--full": ("full", None, "a differential job makes a new full (starts a new set)")},
                       {"job": None, "wait": False, "upload_pending": False, "full": False},
                       ("--upload-pending", "--full")),
    "history": Command("recent runs, newest first", None,
                       {**JOB_OPTION, "--limit": ("limit", history_limit,
                                                  f"at most N runs, 1-{proto.HISTORY_MAX} (default "
                                                  f"{proto.HISTORY_LIMIT})")},
                       {"job": None, "limit": proto.HISTORY_LIMIT}),
    "list": Command("backups present at the destinations", None, {**JOB_OPTION, **DESTINATION_OPTION},
                    {"job": None, "destination": None}),
    "reload": Command("validate and load the configuration file again", None, {}, {}),
    "prune": Command("apply each job's keep policy at its destinations: remove what no rule keeps", None,
                     {**JOB_OPTION, **DESTINATION_OPTION,
                      "--dry-run": ("dry_run", None, "only show each backup with the rule that keeps it")},
                     {"job": None, "destination": None, "dry_run": False}),
    "restore": Command("restore BACKUP (run id, archive name, latest, latest:JOB) into --to DIR", "backup",
                       {"--to": ("to", text_value, "the folder to restore into (created if missing)"),
                        "--source": ("sources", Repeated(text_value), "only this source (repeatable)"),
                        "--path": ("paths", Repeated(text_value), "only members matching this glob (repeatable)"),
                        "--force": ("force", None, "restore into a folder that is not empty"),
                        "--base": ("base", text_value, "with --archive of a differential: its full's archive file"),
                        **FETCH_OPTIONS},
                       {}),
    "verify": Command("check BACKUP's sha256 and every member against its manifest (exit 0 ok, 1 not)", "backup",
                      {"--against-source": ("against_source", None, "also compare random files with the live "
                                                                    "source: changed / missing / unchanged"),
                       "--sample": ("sample", positive_int, "files compared with --against-source (default 100)"),
                       **FETCH_OPTIONS}, {}),
    "check": Command("OK or CRITICAL per job (exit 0 or 1): last success younger than --max-age, last run "
                     "succeeded, no upload waiting longer", None,
                     {**JOB_OPTION, "--max-age": ("max_age", duration_value,
                                                  "e.g. 26h (default: each job's alert_after, else 26h)")},
                     {"job": None, "max_age": None}),
}
LOCAL_COMMANDS = ("restore", "verify")   # run in backupctl itself (backupd.cli.restore, imported when used)


def setup_commands() -> dict:
    """The destinations' set-up commands (drive-login), name -> SetupCommand: run by backupctl itself, not
    the daemon. Imported only when asked for, so the daemon's verbs start with the stdlib and the protocol."""
    from backupd.destinations.commands import SETUP_COMMANDS
    return SETUP_COMMANDS
USAGE = "usage: backupctl [--socket PATH] [--json] COMMAND [ARGS]"


class UsageError(Exception):
    """A mistake on the command line (exit 2)."""


class HelpRequested(Exception):
    """-h/--help, given for the command in args[0] (or None)."""


def help_text(command: str | None) -> str:
    if command is None:
        lines = [USAGE, "", "Control the backupd daemon.", "", "commands:"]
        lines += [f"  {name:12s} {entry.summary}" for name, entry in {**COMMANDS, **setup_commands()}.items()]
        options = GLOBAL_OPTIONS
    else:
        summary, options = COMMANDS[command].summary, COMMANDS[command].options
        lines = [*usage_lines(command), "", summary]
    lines += ["", "options:"] + [f"  {name:18s} {entry[2]}" for name, entry in options.items()]
    return "\n".join(lines)


def usage_lines(command: str) -> list[str]:
    """`usage: backupctl COMMAND ...`; a command with exclusive options gets one line for each of them."""
    positional, options, _, exclusive = COMMANDS[command][1:]
    head = f"backupctl {command}" + (f" [{positional.upper()}]" if positional else "")
    lines = []
    for chosen in exclusive or (None,):
        flags = " ".join(f"[{o}]" if c is None else f"[{o} {d.upper()}]" for o, (d, c, _) in options.items()
                         if o == chosen or o not in exclusive)
        lines.append(f"{'usage:' if not lines else '      '} {head} {flags}")
    return lines


def check_exclusive(options: dict) -> None:
    """UsageError when two of the command's exclusive options were both given."""
    command = COMMANDS[options["command"]]
    given = [name for name in command.exclusive if options.get(command.options[name][0])]
    if len(given) > 1:
        raise UsageError(f"options {' and '.join(given)} cannot be combined for {options['command']}")


def _take_option(name: str, inline: str | None, table: dict, rest: list[str], options: dict) -> None:
    dest, convert, _ = table[name]
    if convert is None:
        if inline is not None:
            raise UsageError(f"option {name} takes no value")
        options[dest] = True
        return
    if inline is None:
        if not rest:
            raise UsageError(f"option {name} needs a value")
        inline = rest.pop(0)
    if isinstance(convert, Repeated):
        options.setdefault(dest, []).append(convert(inline, name))
    else:
        options[dest] = convert(inline, name)


def parse_args(argv: list[str]) -> dict:
    """Parse the command line into {"command", "socket", "json", and the command's request arguments}."""
    options: dict = {"command": None, "socket": None, "json": False, "timeout": REPLY_TIMEOUT}
    rest = list(argv)
    while rest:
        token = rest.pop(0)
        command = options["command"]
        if token in ("-h", "--help"):
            raise HelpRequested(command)
        if token.startswith("-") and token != "-":
            name, equals, inline = token.partition("=")
            table = {**GLOBAL_OPTIONS, **(COMMANDS[command].options if command else {})}
            if name not in table:
                raise UsageError(f"unknown option {name}" + (f" for {command}" if command else ""))
            _take_option(name, inline if equals else None, table, rest, options)
        elif command is None:
            options["command"] = token
            if token not in COMMANDS:
                if token not in setup_commands():
                    known = ", ".join([*COMMANDS, *setup_commands()])
                    raise UsageError(f"unknown command {token!r}; commands: {known}")
                options["setup_args"], rest = rest, []   # everything after it belongs to the command
        elif COMMANDS[command].positional and COMMANDS[command].positional not in options:
            options[COMMANDS[command].positional] = token
        else:
            raise UsageError(f"unexpected argument {token!r} for {command}")
    if options["command"] is None:
        raise UsageError("name a command")
    if options["command"] in COMMANDS:
        check_exclusive(options)
    return options


def request_args(options: dict) -> dict:
    return {name: options.get(name, default) for name, default in COMMANDS[options["command"]].request.items()}


def run_setup_command(name: str, argv: list[str]) -> int:
    """A destination's set-up command (drive-login), whose libraries are imported only here."""
    from backupd.destinations.commands import run_setup_command as run
    try:
        return run(name, argv)
    except ImportError as exc:
        print(f"backupctl: {name} is not available in this installation ({exc})", file=sys.stderr)
        return EXIT_FAILED


def fail(message: str, code: int) -> int:
    print(f"backupctl: {message}", file=sys.stderr)
    return code


def unreachable(path: str, exc: BaseException) -> int:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    hint = ("you need to be root or in the daemon's control group" if isinstance(exc, PermissionError)
            else "is it running? try: systemctl start backupd.socket")
    return fail(f"cannot reach the daemon at {path}: {reason}; {hint}", EXIT_UNREACHABLE)


def report_remote_error(exc: RemoteError | proto.RemoteError, as_json: bool) -> int:
    """The daemon said no: its message and each of details["errors"] on stderr (with --json, also the error)."""
    if as_json:
        print(json.dumps({"error": {"message": exc.message, "code": exc.code, "details": exc.details}}, indent=2))
    errors = exc.details.get("errors")
    lines = [exc.message] + [f"  {error}" for error in (errors if isinstance(errors, list) else [])]
    return fail("\n".join(printable(lines)), EXIT_FAILED)


def execute(options: dict) -> int:
    """One request through the client; its reply as the daemon gave it goes to show() (--json prints it as is)."""
    command, as_json = options["command"], options["json"]
    client = Client(options["socket"], options["timeout"])
    waiting = command == "trigger" and options.get("wait", False)
    progress = WaitProgress(enabled=waiting and (not as_json or sys.stderr.isatty()))
    try:
        try:
            result = client.request(command, request_args(options), on_event=progress, waiting=waiting)
        finally:
            progress.clear()
    except RemoteError as exc:
        return report_remote_error(exc, as_json)
    except DaemonUnreachable as exc:
        going_on = f"; run {progress.run_id} may still be going on (backupctl status)" if progress.run_id else ""
        return fail(f"{exc}{UNREACHABLE_HINTS.get(exc.reason, '')}{going_on}", EXIT_UNREACHABLE)
    except PermissionDenied as exc:
        return fail(str(exc), EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        return fail(f"stopped waiting; the run {progress.run_id or ''} goes on in the daemon".replace("  ", " "), 130)
    return show(command, result, as_json, waiting)


def show(command: str, result: dict, as_json: bool, waiting: bool) -> int:
    """Print the result (control characters from the daemon escaped); exit 1 for a run that failed, or a
    result FAILED says failed (a prune that could not finish somewhere)."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        try:
            text = SHOW[command](printable(result))
        except SHAPE_ERRORS as exc:
            return fail(f"unexpected reply from the daemon to {command} ({type(exc).__name__}: "
                        f"{printable(str(exc))}); --json shows replies as they come", EXIT_FAILED)
        print(text)
    failed = (waiting and result.get("status") != "success") or (command in FAILED and FAILED[command](result))
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else list(argv))
    except HelpRequested as help_:
        print(help_text(help_.args[0]))
        return EXIT_OK
    except UsageError as exc:
        print(f"{USAGE}\nbackupctl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if options["command"] not in COMMANDS:
        return run_setup_command(options["command"], options["setup_args"])
    if options["command"] in LOCAL_COMMANDS:
        from backupd.cli.restore import run
        return run(options)
    return execute(options)


if __name__ == "__main__":
    sys.exit(main())
