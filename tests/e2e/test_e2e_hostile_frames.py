"""The real daemon's log stays JSON: hostile control frames are answered with an error, refusals are log lines."""
from __future__ import annotations

import json
import socket
import struct

import pytest

from backupd.daemon import protocol as proto
from tests.configs import command_source, job, write_config

DEEP = '{"id": "d", "command": "status", "args": {"job": ' + "[" * 1000 + "]" * 1000 + "}}"
HUGE_INT = '{"id": "h", "command": "history", "args": {"limit": ' + "9" * 5000 + "}}"
SURROGATE_ID = '{"id": "\\udc80", "command": "status"}'
# frame text -> (the reply's error code, how its message starts)
HOSTILE = {
    DEEP: ("bad_request", "bad request: frame is not usable JSON: nested too deeply"),
    HUGE_INT: ("bad_request", "bad request: frame is not usable JSON: an integer with too many digits"),
    SURROGATE_ID: ("bad_request", "bad request: request holds a string that is not valid Unicode"),
    '{"id": "t1", "command": "trigger", "args": {"job": []}}': ("bad_args", "argument 'job' must be a string"),
    '{"id": "t2", "command": "trigger", "args": {"job": {}}}': ("bad_args", "argument 'job' must be a string"),
    '{"id": "h1", "command": "history", "args": {"job": []}}': ("bad_args", "argument 'job' must be a string"),
    '{"id": "h2", "command": "history", "args": {"job": {}}}': ("bad_args", "argument 'job' must be a string"),
}


def exchange(path, text: str) -> dict:
    body = text.encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(struct.pack(">I", len(body)) + body)
        return proto.recv_frame(sock, proto.MAX_REPLY)


@pytest.fixture
def daemon(tmp_path, start_daemon):
    config = write_config(tmp_path, jobs={"main": job(["cmd"])},
                          sources={"cmd": command_source(["sh", "-c", "echo hi"])})
    return start_daemon(config)


def test_each_hostile_frame_gets_an_error_reply_and_every_log_line_is_json(daemon):
    for _ in range(3):
        for text, (code, message) in HOSTILE.items():
            reply = exchange(daemon.socket, text)
            assert (reply["ok"], reply["error"]["code"]) == (False, code), text[:80]
            assert reply["error"]["message"].startswith(message)
    assert daemon.ctl_json("status")["jobs"][0]["name"] == "main"
    assert daemon.stop() == 0
    lines = daemon.log_path.read_text(errors="strict").splitlines()
    not_json = [line[:120] for line in lines if not _is_json_object(line)]
    assert not_json == []
    assert any(json.loads(line).get("message", "").startswith("bad control request") for line in lines)
    assert not [line for line in lines if "Traceback" in line]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_a_second_daemon_on_the_same_state_says_so_in_a_json_line(daemon, start_daemon):
    second = start_daemon(daemon.config, wait_ready=False)
    assert second.proc.wait(30) == 1
    lines = daemon.log_path.read_text().splitlines()
    assert [line[:120] for line in lines if not _is_json_object(line)] == []
    refused = [json.loads(line) for line in lines if "already running" in line]
    assert [(line["level"], line["state_dir"]) for line in refused] == [("ERROR", str(daemon.state))]
