"""backupctl against daemons that answer badly, slowly, or not at all: one clear line and a meaningful exit code."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backupd.daemon import protocol as proto
from backupd.daemon.control import CommandError
from tests.cli.peers import RawPeer, busy, control_server, read_request

BIN = Path(sys.executable).parent / "backupctl"
BACKUPCTL = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "backupd.cli.ctl"]
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"    # a title change, clear screen, a C1 CSI, a bidi override
ESCAPED = r"\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"


def ctl(socket_path, *args, timeout=60):
    environment = {k: v for k, v in os.environ.items() if k != "BACKUPD_SOCKET"}
    return subprocess.run(BACKUPCTL + ["--socket", socket_path, *args], capture_output=True, text=True,
                          errors="surrogateescape", env=environment, timeout=timeout)


def one_error_line(done) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("backupctl: "), done.stderr
    return lines[0]


# -- defect: right shape, wrong field types --------------------------------------------------------------------
def progress_then(result):
    def handler(args, peer, emit):
        emit({"type": "progress", "run_id": 7, "stage": ["archiving"], "bytes_done": "lots", "percent": "half"})
        return result
    return handler


WRONG_TYPES = {
    "uptime-text": ("status", lambda a, p, e: {"uptime_s": "a while", "jobs": []}),
    "last-run-text": ("status", lambda a, p, e: {"jobs": [{"name": "daily", "last_run": "yesterday"}]}),
    "jobs-text": ("status", lambda a, p, e: {"jobs": "daily"}),
    "times-numbers": ("history", lambda a, p, e: {"runs": [{"run_id": 1, "started": 5, "ended": 7}]}),
    "runs-number": ("history", lambda a, p, e: {"runs": 5}),
    "size-text": ("list", lambda a, p, e: {"backups": [{"name": "a", "size": "big"}]}),
    "odd-progress-and-run": ("trigger", progress_then({"status": "success", "destinations": "local",
                                                       "archive": "a.tar.zst"})),
}


@pytest.mark.parametrize("command, handler", WRONG_TYPES.values(), ids=WRONG_TYPES)
def test_wrong_field_types_give_one_line_and_exit_1(command, handler):
    with control_server({command: handler}) as path:
        done = ctl(path, command, *(["--wait"] if command == "trigger" else []))
    assert done.returncode == 1
    assert "unexpected" in one_error_line(done)


# -- defect: terminal control sequences from the daemon ----------------------------------------------------------
def reject(args, peer, emit):
    raise CommandError(f"bad thing {HOSTILE}", details={"errors": [f"At 'x': {HOSTILE}"]})


HOSTILE_REPLIES = [
    ("status", {"status": lambda a, p, e: {"jobs": [{"name": HOSTILE, "schedule": HOSTILE, "last_run": None}],
                                           "status_text": HOSTILE, "config": HOSTILE}}),
    ("history", {"history": lambda a, p, e: {"runs": [{"run_id": HOSTILE, "status": "failed", "error": {
        "category": HOSTILE, "message": HOSTILE}, "destinations": [{"name": HOSTILE, "link": HOSTILE}]}]}}),
    ("list", {"list": lambda a, p, e: {"backups": [{"name": HOSTILE, "destination": "d"}], "errors": [HOSTILE]}}),
    ("reload", {"reload": reject}),
]


@pytest.mark.parametrize("command, handlers", HOSTILE_REPLIES, ids=[c for c, _ in HOSTILE_REPLIES])
def test_control_characters_from_the_daemon_are_escaped(command, handlers):
    with control_server(handlers) as path:
        done = ctl(path, command)
    shown = done.stdout + done.stderr
    assert "Traceback" not in shown, shown
    assert not [c for c in shown if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c == "\u202e"], shown
    assert ESCAPED in shown


def test_a_lone_surrogate_from_the_daemon_is_escaped_not_a_crash():
    def answer(conn, index):   # JSON may carry "\ud800", which no terminal encoding can print
        with conn:
            request_id, _, _ = read_request(conn)
            reply = json.dumps(proto.ok_reply(request_id, {"runs": [{"run_id": "\ud800", "status": "ok"}]}))
            conn.sendall(len(reply).to_bytes(4, "big") + reply.encode("ascii"))
    with RawPeer(answer) as peer:
        done = ctl(peer.path, "history")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[1].startswith(r"\ud800  ")


def test_limit_out_of_range_is_a_usage_error_naming_the_range():
    done = ctl("/nonexistent/backupd.sock", "history", "--limit", "5000")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == "backupctl: error: option --limit: expected a whole number from 1 to " \
                                           f"{proto.HISTORY_MAX}, got '5000'"


# -- defect: a busy daemon looks dead; a daemon that never answers is waited for forever -------------------------
def test_busy_replies_are_retried_until_the_daemon_answers():
    def answer(conn, index):
        if index < 3:
            return busy(conn)
        with conn:
            request_id, command, args = read_request(conn)
            proto.send_frame(conn, proto.ok_reply(request_id, {"runs": [], "asked": command}))
    with RawPeer(answer) as peer:
        done = ctl(peer.path, "history")
        assert peer.accepted == 4
    assert (done.returncode, done.stdout, done.stderr) == (0, "no runs recorded\n", "")


def test_a_daemon_busy_until_the_timeout_is_said_to_be_busy():
    with RawPeer(lambda conn, index: busy(conn)) as peer:
        done = ctl(peer.path, "--timeout", "1", "status")
        assert peer.accepted > 1
    assert done.returncode == 3
    line = one_error_line(done)
    assert "busy" in line and "is it running" not in line


def test_a_full_listen_queue_is_busy_not_dead():
    with RawPeer(backlog=0) as peer:
        assert peer.fill_backlog() >= 1
        started = time.monotonic()
        done = ctl(peer.path, "--timeout", "1", "status")
        took = time.monotonic() - started
    assert done.returncode == 3
    line = one_error_line(done)
    assert "busy" in line and "is it running" not in line and peer.path in line
    assert took >= 1.0     # it kept trying for its whole timeout


def event_then_silence(conn, index):
    request_id, _, _ = read_request(conn)
    proto.send_frame(conn, proto.event_frame(request_id, {"type": "progress", "run_id": "5e1f", "stage": "archiving",
                                                          "bytes_done": 0}))


@pytest.mark.parametrize("args, answer, expected", [
    (["status"], None, "did not answer within 1s"),
    (["trigger", "--wait"], None, "did not answer within 1s"),
    (["trigger", "--wait"], event_then_silence, "stopped answering: nothing for 1s"),
], ids=["status-never", "wait-never", "wait-goes-silent"])
def test_a_peer_that_stops_answering_is_given_up_on(args, answer, expected):
    with RawPeer(answer) as peer:
        done = ctl(peer.path, "--timeout", "1", *args, timeout=30)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.splitlines()[-1]          # after the progress lines, if any
    assert last.startswith("backupctl: ") and expected in last and peer.path in last


@pytest.mark.parametrize("value", ["0", "x", "-1"])
def test_timeout_must_be_positive(value):
    done = ctl("/nonexistent/backupd.sock", "--timeout", value, "status")
    assert done.returncode == 2 and "option --timeout: expected a positive number of seconds" in done.stderr
