"""backupd.daemon.systemd against real sockets: a test-owned NOTIFY_SOCKET and inherited listening sockets."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from backupd.daemon import systemd
from tests.e2e.daemon_harness import NotifyReceiver
from tests.waiting import wait_for


@pytest.fixture
def notify_socket(tmp_path):
    """A datagram socket standing in for systemd's notification socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.fixture
def notifier_at(monkeypatch):
    """notifier_at(address): a Notifier made with NOTIFY_SOCKET=address, as systemd sets it."""
    def make(address: str) -> systemd.Notifier:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        return systemd.Notifier()
    return make


@pytest.fixture
def notifier(notifier_at, notify_socket) -> systemd.Notifier:
    return notifier_at(notify_socket.getsockname())


def receive(sock: socket.socket) -> dict[str, str]:
    return dict(field.split("=", 1) for field in sock.recv(4096).decode().split("\n"))


def test_messages_arrive_as_systemd_expects(notify_socket, notifier):
    assert notifier.status("loading config")
    assert receive(notify_socket) == {"STATUS": "loading config"}
    notifier.ready("idle; next run daily at 03:00")
    assert receive(notify_socket) == {"READY": "1", "STATUS": "idle; next run daily at 03:00"}
    notifier.stopping()
    assert receive(notify_socket) == {"STOPPING": "1"}
    notifier.watchdog_ping()
    assert receive(notify_socket) == {"WATCHDOG": "1"}
    notifier.extend_timeout(2.5)
    assert receive(notify_socket) == {"EXTEND_TIMEOUT_USEC": "2500000"}


def test_reloading_carries_a_monotonic_timestamp(notify_socket, notifier):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    message = receive(notify_socket)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert message["RELOADING"] == "1"
    assert before <= int(message["MONOTONIC_USEC"]) <= after


def test_status_is_one_line_and_utf8(notify_socket, notifier):
    notifier.status("daily: failed\nbad → config")
    assert receive(notify_socket) == {"STATUS": "daily: failed bad → config"}


def test_non_latin_status_arrives_intact(notify_socket, notifier):
    """sdnotify latin-1-encodes what it is given: the UTF-8 bytes must come out unchanged, not dropped."""
    text = "sauvegarde 'réseau' 备份 — Ünïcødé ✓"
    assert notifier.status(text)
    assert notify_socket.recv(4096) == ("STATUS=" + text).encode("utf-8")


def test_lone_surrogate_in_status_is_replaced_not_raised(notify_socket, notifier):
    assert notifier.status("job \udcff name")
    assert receive(notify_socket) == {"STATUS": "job ? name"}


def test_a_socket_that_appears_later_is_connected_at_the_next_message(tmp_path, notifier_at):
    path = tmp_path / "late.sock"
    notifier = notifier_at(str(path))
    assert notifier.enabled and notifier.ready() is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as late:
        late.bind(str(path))
        late.settimeout(5)
        assert notifier.status("now")
        assert late.recv(100) == b"STATUS=now"


def test_abstract_socket_name(notifier_at):
    name = f"backupd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notifier_at("@" + name).ready()
        assert sock.recv(100) == b"READY=1"


def test_no_op_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = systemd.Notifier()
    assert not notifier.enabled
    assert notifier.ready("x") is False


def test_environment_is_read_when_no_address_given(monkeypatch, notify_socket):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.getsockname())
    assert systemd.Notifier().status("from env")
    assert receive(notify_socket) == {"STATUS": "from env"}


def test_send_error_is_swallowed(tmp_path, notifier_at):
    assert notifier_at(str(tmp_path / "nobody-listens.sock")).ready() is False


def test_a_vanished_socket_is_a_failed_send_not_an_error(tmp_path, notifier_at):
    path = tmp_path / "gone.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        notifier = notifier_at(str(path))
        assert notifier.ready()
    path.unlink()
    assert notifier.status("nobody listens") is False


def test_a_full_queue_drops_the_message_instead_of_blocking(tmp_path, notifier_at):
    receiver = NotifyReceiver(tmp_path / "behind.sock")
    try:
        notifier = notifier_at(str(receiver.path))
        receiver.fill()                                 # systemd behind on reading: no room for one more
        sent: list[bool] = []
        sender = threading.Thread(target=lambda: sent.append(notifier.status("behind")), daemon=True)
        sender.start()
        sender.join(timeout=30)
        assert not sender.is_alive() and sent == [False]
        receiver.drain()
        assert notifier.status("caught up")            # a new connection once there is room again
        assert receiver.drain()[-1][1] == {"STATUS": "caught up"}
    finally:
        receiver.close()


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, None),
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval(environ, expected):
    assert systemd.watchdog_interval(environ) == expected


def test_watchdog_pings_only_while_healthy(notify_socket, notifier):
    healthy = threading.Event()
    healthy.set()
    dog = systemd.Watchdog(notifier, 0.05, healthy.is_set)
    dog.start()
    try:
        assert [receive(notify_socket) for _ in range(3)] == [{"WATCHDOG": "1"}] * 3
        healthy.clear()
        drain_until_quiet(notify_socket, quiet=0.3)
        healthy.set()
        assert receive(notify_socket) == {"WATCHDOG": "1"}
    finally:
        dog.stop(timeout=5)
    assert not dog.is_alive()


def test_watchdog_rate_follows_interval(notify_socket, notifier):
    dog = systemd.Watchdog(notifier, 0.1, lambda: True)
    start = time.monotonic()
    dog.start()
    for _ in range(4):
        receive(notify_socket)
    elapsed = time.monotonic() - start
    dog.stop(timeout=5)
    assert 0.28 <= elapsed < 2.0  # 4 pings at t=0, .1, .2, .3


def test_failing_health_check_means_no_ping(notify_socket, notifier):
    def broken() -> bool:
        raise RuntimeError("scheduler gone")

    dog = systemd.Watchdog(notifier, 0.02, broken)
    dog.start()
    notify_socket.settimeout(0.3)
    with pytest.raises(TimeoutError):
        notify_socket.recv(100)
    dog.stop(timeout=5)


def drain_until_quiet(sock: socket.socket, quiet: float) -> None:
    """Read until no datagram arrives for `quiet` seconds (fails after 5 s of chatter)."""
    deadline = time.monotonic() + 5
    sock.settimeout(quiet)
    try:
        while time.monotonic() < deadline:
            try:
                sock.recv(100)
            except TimeoutError:
                return
        pytest.fail("watchdog kept pinging while unhealthy")
    finally:
        sock.settimeout(5)


CHILD = """
import os, socket, sys
from backupd.daemon import systemd
names = systemd.listen_fd_names()
socks = systemd.listen_fds()
left = [v for v in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES") if v in os.environ]
print(len(socks), names, left, [(s.family.name, s.type.name, s.fileno()) for s in socks], flush=True)
if socks:
    conn, _ = socks[0].accept()
    conn.sendall(b"served")
    conn.close()
"""


def run_child(env: dict[str, str], pass_fds=(), preexec=None) -> subprocess.Popen:
    """The child python; a shell sets LISTEN_PID to its own pid when env asks for "self", then execs it."""
    shell = 'if [ "$LISTEN_PID" = self ]; then export LISTEN_PID=$$; fi; exec "$0" -c "$1"'
    return subprocess.Popen(
        ["sh", "-c", shell, sys.executable, CHILD], env={**os.environ, **env}, pass_fds=pass_fds,
        preexec_fn=preexec, stdout=subprocess.PIPE, text=True,
    )


def test_listen_fds_takes_an_inherited_socket(tmp_path):
    path = str(tmp_path / "ctl.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()

    env = {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "control"}
    child = run_child(env, {listener.fileno(), 3}, lambda: os.dup2(listener.fileno(), 3))
    line = child.stdout.readline().strip()
    assert line == "1 ['control'] [] [('AF_UNIX', 'SOCK_STREAM', 3)]"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(path)
        assert client.recv(10) == b"served"
    assert child.wait(timeout=10) == 0
    listener.close()


def test_listen_fds_for_another_pid_is_ignored_and_unset():
    child = run_child({"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    out, _ = child.communicate(timeout=10)
    assert out.strip() == "0 [] [] []"


def test_listen_fds_without_activation(monkeypatch):
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(name, raising=False)
    assert systemd.listen_fds() == []


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate not installed")
def test_listen_fds_under_systemd_socket_activate(tmp_path):
    path = str(tmp_path / "ctl.sock")
    argv = ["systemd-socket-activate", "-l", path, "--fdname=control", sys.executable, "-c", CHILD]
    activator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: os.path.exists(path), "the activation socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(path)
            assert client.recv(10) == b"served"
        assert activator.stdout.readline().strip() == "1 ['control'] [] [('AF_UNIX', 'SOCK_STREAM', 3)]"
        assert activator.wait(timeout=10) == 0
    finally:
        activator.kill()
        activator.wait()


