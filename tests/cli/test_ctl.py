"""The real backupctl, run as a process against a real ControlServer serving canned results."""
import importlib
import json
import os
import pty
import py_compile
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backupd.daemon.control import CommandError
from tests.cli.peers import control_server

BIN = Path(sys.executable).parent / "backupctl"
SCRIPT = [str(BIN)] if BIN.exists() else ["-m", "backupd.cli.ctl"]   # the console script, else the module
BACKUPCTL = SCRIPT if BIN.exists() else [sys.executable] + SCRIPT
HEAVY = ("apscheduler", "google", "googleapiclient", "zstandard", "sdnotify", "pythonjsonlogger", "httplib2")
ALLOWED_OWN = {"backupd", "backupd.cli", "backupd.cli.ctl", "backupd.cli.ctl_format",
               "backupd.client", "backupd.client.api", "backupd.client.call", "backupd.client.errors",
               "backupd.daemon", "backupd.daemon.protocol",
               "backupd.util", "backupd.util.units"}   # util: the stdlib-only bottom layer


def run_record(status="success", **changes):
    record = {"run_id": "3f2a1c0d9e8b", "job": "daily", "trigger": "manual", "status": status,
              "started": "2024-05-01T03:00:00Z", "ended": "2024-05-01T03:02:05Z",
              "archive": {"name": "daily-host-20240501T030000Z-3f2a1c.tar.zst", "size": 1288490189,
                          "sha256": "ab" * 32},
              "destinations": [{"name": "local", "status": "success", "location": "/srv/a.tar.zst",
                                "file_id": "", "link": "", "error": ""}],
              "error": None, "warnings": 0}
    return {**record, **changes}


FAILED_RUN = run_record("failed", archive=None, destinations=[],
                        error={"category": "source", "kind": "unreadable", "message": "cannot read /srv/x"})
STATUS = {"version": "0.1.0", "pid": 4242, "uptime_s": 3725.0, "config": "/etc/backupd/backupd.toml",
          "status_text": "idle; next run daily at 2024-05-02T03:00:00Z",
          "jobs": [{"name": "daily", "schedule": "0 3 * * *", "timezone": "UTC", "next_run": "2024-05-02T03:00:00Z",
                    "last_run": run_record(), "running": {"run_id": "77aa", "stage": "archiving",
                                                          "bytes_done": 1610612736, "bytes_total": None,
                                                          "percent": None}}]}


FULL_NAME = "sets-host-20240501T030000Z-aaaa1111.tar.zst"
DIFF_NAMES = ("sets-host-20240502T030000Z-bbbb2222-diff-aaaa1111.tar.zst",
              "sets-host-20240503T030000Z-cccc3333-diff-aaaa1111.tar.zst")
DIFF_RUN = run_record(run_id="bbbb2222dddd", job="sets", archive={
    "name": DIFF_NAMES[0], "size": 300 << 20, "sha256": "ef" * 32, "kind": "differential", "base": FULL_NAME,
    "base_run_id": "aaaa1111eeee", "base_sha256": "ab" * 32, "base_size": 1 << 30, "set_size": (1 << 30) + (300 << 20)})
FULL_RUN = run_record(run_id="aaaa1111eeee", job="sets", archive={
    "name": FULL_NAME, "size": 1 << 30, "sha256": "ab" * 32, "kind": "full", "set_size": 1 << 30})
SET_LISTING = [{"destination": "local", "name": FULL_NAME, "size": 1 << 30, "job": "sets", "kind": "full",
                "set_size": 1 << 30},
               {"destination": "local", "name": DIFF_NAMES[0], "size": 300 << 20, "job": "sets", "kind": "differential",
                "base_run": "aaaa1111", "base": FULL_NAME, "set_size": (1 << 30) + (300 << 20)},
               {"destination": "local", "name": DIFF_NAMES[1], "size": 200 << 20, "job": "sets", "kind": "differential",
                "base_run": "aaaa1111", "base": FULL_NAME, "set_size": (1 << 30) + (500 << 20)},
               {"destination": "drive", "name": DIFF_NAMES[1], "size": 200 << 20, "job": "sets", "kind": "differential",
                "base_run": "aaaa1111"}]


def trigger(args, peer, emit):
    if args["job"] == "busy":
        return {"run_id": "0000aaaa", "job": "busy", "started": False, "full": False,
                **({"note": "the run going on was not asked for a new full"} if args["full"] else {})}
    if args["job"] == "sets":
        return {"run_id": "3f2a1c0d9e8b", "job": "sets", "started": True, "full": args["full"], "seen": args}
    if not args["wait"]:
        return {"run_id": "3f2a1c0d9e8b", "job": args["job"] or "daily", "started": True}
    for stage, done in (("archiving", 0), ("archiving", 512 << 20), ("uploading", 1 << 30)):
        emit({"type": "progress", "run_id": "3f2a1c0d9e8b", "stage": stage, "bytes_done": done,
              "bytes_total": 1 << 30, "percent": done * 100 / (1 << 30)})
    return FAILED_RUN if args["job"] == "broken" else DIFF_RUN if args["job"] == "diff" else run_record()


def history(args, peer, emit):
    runs = [DIFF_RUN, FULL_RUN] if args["job"] == "sets" else [run_record(), FAILED_RUN]
    return {"runs": runs[: args["limit"]], "seen": args}


def listing(args, peer, emit):
    if args["job"] == "sets":
        return {"backups": SET_LISTING, "errors": []}
    return {"backups": [{"destination": "local", "name": "daily-a.tar.zst", "size": 2048,
                         "created": "2024-05-01T03:02:05Z", "job": "daily", "run_id": "3f2a", "sha256": "cd" * 32,
                         "location": "/srv", "file_id": "", "link": ""}],
            "errors": ["destination 'gdrive': token expired"]}


def reload(args, peer, emit):
    raise CommandError("the new configuration is invalid; still running the old one",
                       details={"errors": ["At 'jobs.daily.schedule': bad crontab", "At 'sources.x': unknown"]})


HANDLERS = {
    "status": lambda args, peer, emit: STATUS,
    "trigger": trigger,
    "history": history,
    "list": listing,
    "reload": reload,
}


@pytest.fixture(scope="module")
def daemon():
    """A ControlServer with canned handlers on a short socket path."""
    with control_server(HANDLERS) as path:
        yield path


def ctl(*args, socket_path=None, env=None, **streams):
    """Run backupctl; stdout and stderr are captured as text unless given."""
    environment = {k: v for k, v in os.environ.items() if k != "BACKUPD_SOCKET"} | (env or {})
    prefix = ["--socket", socket_path] if socket_path else []
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | streams
    return subprocess.run(BACKUPCTL + prefix + list(args), text=True, env=environment, timeout=30, **streams)


def test_status_shows_daemon_jobs_and_run_in_progress(daemon):
    done = ctl("status", socket_path=daemon)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "backupd 0.1.0  pid 4242  up 1h02m  config /etc/backupd/backupd.toml" in out
    assert re.search(r"^JOB\s+SCHEDULE\s+NEXT RUN\s+LAST RUN\s+RESULT\s+SIZE$", out, re.M)
    assert re.search(r"^daily\s+0 3 \* \* \* UTC\s+2024-05-0\d \d\d:00:00\s+.*success\s+1\.2 GiB$", out, re.M)
    assert "running: daily 77aa: archiving 1.5 GiB" in out


def test_json_prints_the_result_unchanged_and_socket_comes_from_the_environment(daemon):
    done = ctl("--json", "status", env={"BACKUPD_SOCKET": daemon})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == STATUS


def test_trigger_without_wait(daemon):
    started = ctl("trigger", socket_path=daemon)
    assert (started.returncode, started.stdout.strip()) == (0, "started run 3f2a1c0d9e8b of job daily")
    already = ctl("trigger", "busy", socket_path=daemon)
    assert (already.returncode, already.stdout.strip()) == (0, "job busy is already running: run 0000aaaa")


def test_trigger_wait_plain_progress_then_result(daemon):
    done = ctl("trigger", "--wait", "daily", socket_path=daemon)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines == ["run 3f2a1c0d9e8b: archiving 0 B of 1.0 GiB (0%)", "run 3f2a1c0d9e8b: uploading 1.0 GiB of 1.0 GiB (100%)"]
    assert done.stdout.startswith("run 3f2a1c0d9e8b  job daily  manual  success  in 2m05s\n")
    assert re.search(r"^local\s+success\s+/srv/a\.tar\.zst\s+-$", done.stdout, re.M)


def test_trigger_wait_failed_run_exits_1_and_json_is_the_run_record(daemon):
    human = ctl("trigger", "--wait", "broken", socket_path=daemon)
    assert human.returncode == 1
    assert "failed (source: cannot read /srv/x)" in human.stdout
    machine = ctl("--json", "trigger", "broken", "--wait", socket_path=daemon)
    assert machine.returncode == 1 and json.loads(machine.stdout) == FAILED_RUN
    assert machine.stderr == ""


def test_trigger_wait_on_a_terminal_redraws_one_line(daemon):
    leader, follower = pty.openpty()
    try:
        done = ctl("trigger", "--wait", socket_path=daemon, stderr=follower, stdout=subprocess.PIPE)
        os.close(follower)
        follower = None
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert done.returncode == 0
    text = output.decode()
    assert text.count("\r\x1b[K") == 4 and "\n" not in text.replace("\r\n", "")
    assert "uploading 1.0 GiB of 1.0 GiB (100%)" in text


def test_history_and_list_tables(daemon):
    history = ctl("history", "--limit", "2", "--job", "daily", socket_path=daemon)
    assert history.returncode == 0, history.stderr
    assert re.search(r"^RUN\s+JOB\s+TRIGGER\s+STARTED\s+TOOK\s+SIZE\s+DESTINATIONS\s+RESULT$", history.stdout, re.M)
    assert re.search(r"^3f2a1c0d9e8b\s+daily\s+manual\s+\S+ \S+\s+2m05s\s+1\.2 GiB\s+local success\s+success$",
                     history.stdout, re.M)
    assert "failed (source: cannot read /srv/x)" in history.stdout
    seen = json.loads(ctl("--json", "history", "--limit", "1", socket_path=daemon).stdout)
    assert seen["seen"] == {"job": None, "limit": 1} and len(seen["runs"]) == 1
    listing = ctl("list", "--destination", "local", socket_path=daemon)
    assert re.search(r"^local\s+daily-a\.tar\.zst\s+2\.0 KiB\s+\S+ \S+\s+daily$", listing.stdout, re.M)
    assert "warning: destination 'gdrive': token expired" in listing.stdout


def test_reload_error_lists_each_problem_and_exits_1(daemon):
    done = ctl("reload", socket_path=daemon)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["backupctl: the new configuration is invalid; still running the old one",
                                        "  At 'jobs.daily.schedule': bad crontab", "  At 'sources.x': unknown"]
    machine = ctl("--json", "reload", socket_path=daemon)
    assert json.loads(machine.stdout)["error"]["details"]["errors"][0] == "At 'jobs.daily.schedule': bad crontab"


@pytest.mark.parametrize("args, message", [
    ([], "name a command"),
    (["frobnicate"], "unknown command 'frobnicate'; commands: status, trigger, history, list, reload, prune, restore, verify, check, drive-login"),
    (["history", "--limit", "0"], "option --limit: expected a whole number of at least 1, got '0'"),
    (["history", "--limit=x"], "option --limit: expected a whole number of at least 1, got 'x'"),
    (["history", "--limit"], "option --limit needs a value"),
    (["trigger", "a", "b"], "unexpected argument 'b' for trigger"),
    (["--bogus", "status"], "unknown option --bogus"),
    (["status", "--wait"], "unknown option --wait for status"),
    (["--json=yes", "status"], "option --json takes no value"),
    (["trigger", "--full", "daily", "--upload-pending"], "options --upload-pending and --full cannot be combined for "
                                                         "trigger"),
])
def test_usage_errors_exit_2(args, message):
    done = ctl(*args, socket_path="/nonexistent/backupd.sock")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["usage: backupctl [--socket PATH] [--json] COMMAND [ARGS]",
                                        f"backupctl: error: {message}"]


def test_help_lists_commands_and_command_options():
    general = ctl("--help")
    assert general.returncode == 0 and re.search(r"^  trigger\s+start a backup run", general.stdout, re.M)
    trigger_help = ctl("trigger", "-h")
    assert trigger_help.returncode == 0
    assert trigger_help.stdout.startswith("usage: backupctl trigger [JOB] [--wait] [--upload-pending]\n")


def test_options_may_follow_the_command_and_use_equals(daemon):
    done = ctl("history", f"--socket={daemon}", "--json", "--job=daily", "--limit=1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["seen"] == {"job": "daily", "limit": 1}


def test_trigger_full_is_asked_of_the_daemon_and_shown(daemon):
    asked = ctl("--json", "trigger", "sets", "--full", socket_path=daemon)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["seen"] == {"job": "sets", "wait": False, "upload_pending": False, "full": True}
    shown = ctl("trigger", "sets", "--full", socket_path=daemon).stdout
    assert shown == "started run 3f2a1c0d9e8b of job sets (a new full)\n"
    plain = ctl("--json", "trigger", "sets", socket_path=daemon)
    assert json.loads(plain.stdout)["seen"]["full"] is False
    joined = ctl("trigger", "busy", "--full", socket_path=daemon)
    assert joined.stdout == ("job busy is already running: run 0000aaaa; the run going on was not asked for a new "
                             "full\n")
    usage = ctl("trigger", "--help").stdout.splitlines()
    assert usage[1] == "       backupctl trigger [JOB] [--wait] [--full]"
    assert re.search(r"^  --full\s+a differential job makes a new full", ctl("trigger", "-h").stdout, re.M)


def test_history_list_and_a_waited_run_show_each_backups_kind_its_full_and_the_set(daemon):
    history = ctl("history", "--job", "sets", socket_path=daemon)
    assert history.returncode == 0, history.stderr
    assert f"bbbb2222dddd: differential of {FULL_NAME}, set 1.3 GiB so far" in history.stdout.splitlines()
    assert "aaaa1111eeee:" not in history.stdout            # a full gets no line
    machine = json.loads(ctl("--json", "history", "--job", "sets", socket_path=daemon).stdout)
    assert [run["archive"]["kind"] for run in machine["runs"]] == ["differential", "full"]
    listing = ctl("list", "--job", "sets", socket_path=daemon)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert f"set {FULL_NAME} at local: full + 2 differentials, 1.5 GiB in all" in lines
    assert (f"warning: {DIFF_NAMES[1]} at drive: its full (run aaaa1111) is not there; it cannot be restored "
            "without it") in lines
    assert re.search(rf"^drive\s+{re.escape(DIFF_NAMES[1])}\s+200\.0 MiB\s+-\s+sets$", listing.stdout, re.M)
    waited = ctl("trigger", "diff", "--wait", socket_path=daemon)
    lines = waited.stdout.splitlines()
    assert lines[1] == f"archive {DIFF_NAMES[0]}  differential  300.0 MiB  sha256 {'ef' * 32}"
    assert lines[2] == f"  of {FULL_NAME}, set 1.3 GiB so far"
    full = ctl("trigger", "daily", "--wait", socket_path=daemon).stdout.splitlines()
    assert full[1].startswith("archive daily-host-20240501T030000Z-3f2a1c.tar.zst  full  1.2 GiB  sha256 ")


def test_status_says_what_a_differential_jobs_last_backup_was():
    jobs = [{**STATUS["jobs"][0], "name": name, "differential": differential, "running": None, "last_run": record}
            for name, differential, record in (("sets", True, DIFF_RUN), ("fresh", True, FULL_RUN),
                                                ("plain", False, FULL_RUN))]
    with control_server({"status": lambda args, peer, emit: {**STATUS, "jobs": jobs}}) as path:
        done = ctl("status", socket_path=path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"sets: last backup a differential of {FULL_NAME}, set 1.3 GiB so far" in lines
    assert "fresh: last backup a full (a new set)" in lines
    assert not [line for line in lines if line.startswith("plain: last backup")]
    assert re.search(r"^sets\s+0 3 \* \* \* UTC\s+\S+ \S+\s+\S+ \S+\s+success\s+300\.0 MiB$", done.stdout, re.M)


def test_unreachable_daemon_exits_3_naming_the_socket(tmp_path):
    missing = tmp_path / "none.sock"
    done = ctl("status", socket_path=str(missing))
    assert done.returncode == 3
    assert f"cannot reach the daemon at {missing}" in done.stderr
    assert "systemctl start backupd.socket" in done.stderr
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as orphan:
        orphan.bind(str(stale))  # bound but never listening: connection refused
    refused = ctl("status", env={"BACKUPD_SOCKET": str(stale)})
    assert refused.returncode == 3 and "Connection refused" in refused.stderr


def test_drive_login_is_delegated_to_the_drive_helper():
    done = ctl("drive-login", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: drive-login")
    missing = ctl("drive-login")
    assert missing.returncode == 2 and "--client-secrets" in missing.stderr


def test_backupctl_imports_nothing_heavy(daemon):
    done = subprocess.run([sys.executable, "-X", "importtime"] + SCRIPT + ["--socket", daemon, "status"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "backupd.daemon.protocol" in modules
    assert {m for m in modules if m.startswith("backupd")} <= ALLOWED_OWN
    assert not [m for m in modules if m.split(".")[0] in HEAVY]


def wall_times(command, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def test_startup_time_close_to_a_bare_interpreter(daemon):
    """Issue 5: `backupctl status` <= 1.5x `python -c pass` (same interpreter); median of interleaved pairs."""
    for name in ALLOWED_OWN:   # what backupctl imports of its own, byte-compiled as an installation has it
        py_compile.compile(importlib.import_module(name).__file__)
    bare, status = [sys.executable, "-c", "pass"], BACKUPCTL + ["--socket", daemon, "status"]
    wall_times(status, 2)  # warm the page cache
    pairs = [(wall_times(status, 1)[0], wall_times(bare, 1)[0]) for _ in range(20)]
    ours, base = [p[0] for p in pairs], [p[1] for p in pairs]
    ratio = statistics.median(o / b for o, b in pairs)
    print(f"\nbackupctl status: median {statistics.median(ours) * 1000:.1f} ms (fastest {min(ours) * 1000:.1f}); "
          f"python -c pass: median {statistics.median(base) * 1000:.1f} ms (fastest {min(base) * 1000:.1f}); "
          f"median ratio {ratio:.2f}x")
    assert ratio <= 1.5
