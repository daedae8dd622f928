"""Hostile clients against a real daemon: a hypothesis fuzz of 10,000 malformed frames (wrong types, truncated,
oversized, deeply nested, huge integers, lone surrogates, not UTF-8, not JSON) while 50 slow clients never finish
a frame and other clients hang up in the middle of a large reply or of a restore stream. Throughout, a well-formed
`status` from another client is answered within 2 s; the daemon never dies, logs no exception, writes only JSON
lines, and its memory stays bounded."""
from __future__ import annotations

import collections
import json
import random
import socket

import pytest
from hypothesis import HealthCheck, given, settings

from backupd.daemon import protocol as proto
from tests.configs import directory_source, write_config
from tests.stress import crowd, probes
from tests.stress.hostile_frames import frames

FRAMES = 10_000
LISTED = 1500            # fake backups in the local destination: a `list` reply larger than a socket buffer
MAX_PROBE_S = 2.0
MAX_RSS = 100 << 20


def received_frames(data: bytes) -> list[dict]:
    """The frames a reply holds (failing the test on anything that is not a well-formed frame)."""
    found, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        assert at + 4 + size <= len(data), f"a reply frame cut short: {data[at:at + 80]!r}"
        found.append(proto.decode_frame(data[at + 4:at + 4 + size]))
        at += 4 + size
    return found


def exchange(socket_path, data: bytes) -> str:
    """Send `data`, close our side, read to the end; what the daemon said (its error code, 'ok' or 'no reply')."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(str(socket_path))
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass                                   # refused before reading it all: the reply is still there
        chunks = []
        try:
            while chunk := conn.recv(1 << 20):
                chunks.append(chunk)
        except ConnectionResetError:
            pass                                   # it closed with our bytes unread: the end, as EOF is
    replies = received_frames(b"".join(chunks))
    if not replies:
        return "no reply"
    final = replies[-1]
    return "ok" if final.get("ok") else final["error"]["code"]


def fake_backups(folder, count: int) -> None:
    folder.mkdir()
    for index in range(count):
        name = f"main-fake-20240101T{index // 60 % 24:02d}{index % 60:02d}00Z-{index:08x}.tar.zst"
        (folder / name).write_bytes(b"not an archive")
        (folder / (name + ".meta.json")).write_text(json.dumps(
            {"name": name, "job": "main", "run_id": f"{index:012x}", "sha256": "0" * 64, "created": name[10:26]}))


@pytest.fixture
def daemon(tmp_path, daemons):
    """A daemon with one real backup of 8 MiB (to stream) among many fake ones (to list)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blob.bin").write_bytes(random.Random(7).randbytes(8 << 20))
    fake_backups(tmp_path / "archives", LISTED)
    started = daemons(write_config(tmp_path, sources={"files": directory_source(tmp_path / "data")}))
    assert proto.call(started.socket, "trigger", {"wait": True}, timeout=60)["status"] == "success"
    return started


@pytest.mark.timeout(600)
def test_hostile_frames_slow_clients_and_hang_ups_never_starve_a_good_client(daemon, figures):
    answers: collections.Counter = collections.Counter()
    lies: collections.Counter = collections.Counter()

    @settings(max_examples=FRAMES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(frame=frames())
    def fuzz(frame):
        lies[frame.how] += 1
        answers[exchange(daemon.socket, frame.data)] += 1

    background = [crowd.Prober(daemon.socket), crowd.SlowClients(daemon.socket, 50), crowd.HangUps(daemon.socket),
                  crowd.HangUps(daemon.socket, "fetch", {"backup": "latest"}, read=1 << 18)]
    for client in background:
        client.start()
    try:
        fuzz()
    finally:
        for client in background:
            client.stop()
    prober, slow, hang_ups, stream_hang_ups = background
    assert daemon.proc.poll() is None, "the daemon died"
    assert prober.failures == [] and max(prober.latencies) < MAX_PROBE_S
    assert proto.call(daemon.socket, "status")["jobs"][0]["name"] == "main"
    rss = probes.peak_rss(daemon.proc.pid)
    assert daemon.stop() == 0
    figures(frames_sent=sum(lies.values()), headers=dict(lies), answers=dict(answers), slow_clients=slow.count,
            slow_opened=slow.opened, slow_closed_by_daemon=slow.closed_by_daemon, slow_answers=slow.answers,
            hung_up_mid_reply=hang_ups.hung_up, hung_up_mid_stream=stream_hang_ups.hung_up, **crowd.summary(prober),
            peak_rss_mib=round(rss / 2**20, 1))
    assert sum(lies.values()) >= FRAMES and answers["internal"] == 0
    assert slow.closed_by_daemon > 0 and hang_ups.hung_up > 0 and stream_hang_ups.hung_up > 0
    assert probes.non_json_lines(daemon.log_path) == []
    logged_exceptions = [line.get("message") for line in daemon.log_lines() if "exc_info" in line]
    assert logged_exceptions == []
    assert rss <= MAX_RSS
