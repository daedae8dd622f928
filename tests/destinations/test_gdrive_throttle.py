"""A gdrive destination's bandwidth_limit: the token bucket's arithmetic on an injected clock (no sleeping, no
timing goal: bench/bandwidth_bench.py measures the real rate), the key's parser, and an upload that asks the
bucket for exactly the bytes it sends."""
from __future__ import annotations

import pytest

from backupd.config import ConfigError, load
from backupd.destinations.gdrive import throttle
from backupd.destinations.gdrive.destination import DriveDestination
from backupd.destinations.gdrive.throttle import TokenBucket
from tests.configs import job, write_config
from tests.destinations.helpers import CHUNK, gdrive_config

MiB = 1 << 20


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def paced(bucket: TokenBucket, clock: FakeClock, chunks: list[int]) -> float:
    """Send `chunks` as an uploader does (wait what the bucket says, then send in no time); the seconds taken."""
    start = clock.now
    for amount in chunks:
        clock.now += bucket.reserve(amount)
    return clock.now - start


def test_a_fresh_bucket_paces_every_chunk_including_the_first():
    clock = FakeClock()
    bucket = TokenBucket(4 * MiB, clock=clock)
    assert bucket.reserve(MiB) == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.reserve(MiB) == pytest.approx(0.25)


@pytest.mark.parametrize("chunk", [64 * 1024, MiB, 8 * MiB, 32 * MiB], ids=["small", "1MiB", "8MiB", "over-burst"])
def test_the_long_run_rate_is_the_limit_whatever_the_chunk_size(chunk):
    clock = FakeClock()
    bucket = TokenBucket(20 * MiB, clock=clock)
    chunks = [chunk] * (400 * MiB // chunk)
    seconds = paced(bucket, clock, chunks)
    assert sum(chunks) / seconds == pytest.approx(20 * MiB, rel=1e-9)


def test_time_spent_sending_counts_towards_the_next_wait():
    clock = FakeClock()
    bucket = TokenBucket(MiB, clock=clock)
    clock.now += bucket.reserve(MiB)          # 1 s
    clock.now += 0.4                          # the chunk took 0.4 s on the wire
    assert bucket.reserve(MiB) == pytest.approx(0.6)


def test_idle_time_saves_up_at_most_one_burst():
    clock = FakeClock()
    bucket = TokenBucket(MiB, burst=2 * MiB, clock=clock)
    clock.now += 3600                         # an hour idle saves up 2 MiB, not 3,600
    assert bucket.reserve(2 * MiB) == 0.0
    assert bucket.reserve(MiB) == pytest.approx(1.0)


def test_a_bucket_refuses_a_rate_that_is_not_positive():
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(0)


def test_pace_waits_on_the_cancel_token_and_a_cancel_ends_the_wait():
    class Token:
        waited: list[float] = []

        def wait(self, timeout: float) -> bool:
            self.waited.append(timeout)
            return True

        def check(self) -> None:
            raise RuntimeError("cancelled")

    clock = FakeClock()
    token = Token()
    with pytest.raises(RuntimeError, match="cancelled"):
        throttle.pace(TokenBucket(MiB, clock=clock), 3 * MiB, token)
    assert token.waited == [pytest.approx(3.0)]
    throttle.pace(None, 3 * MiB, token)       # no limit: no wait at all
    assert len(token.waited) == 1


@pytest.mark.parametrize("value,expected", [("20MiB/s", 20 * MiB), ("500KiB/s", 500 * 1024), (" 10MB/s ", 10**7),
                                            ("1.5MiB/s", int(1.5 * MiB))])
def test_bandwidth_limit_reads_a_rate(tmp_path, value, expected):
    config = load(write_config(tmp_path, jobs={"main": job(["files"], ["drive"])}, destinations={
        "drive": {"type": "gdrive", "credentials": "sa.json", "bandwidth_limit": value}}))
    assert config.destinations["drive"].bandwidth_limit == expected


@pytest.mark.parametrize("value,message", [
    ("20MiB", "must be a rate like '20MiB/s' or '500KiB/s', not '20MiB'"),
    (20_000_000, "must be a rate like '20MiB/s' or '500KiB/s', not 20000000"),
    ("fast/s", "must be a rate like '20MiB/s' or '500KiB/s', not 'fast/s'"),
    ("0B/s", "must be at least 1KiB/s (and below 8EiB/s), not '0B/s'"),
    ("9" * 400 + "TiB/s", "must be at least 1KiB/s (and below 8EiB/s), not '" + "9" * 70),
])
def test_bandwidth_limit_refuses_what_is_not_a_rate_in_one_line(tmp_path, value, message):
    path = write_config(tmp_path, jobs={"main": job(["files"], ["drive"])}, destinations={
        "drive": {"type": "gdrive", "credentials": "sa.json", "bandwidth_limit": value}})
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith(f"At 'destinations.drive.bandwidth_limit': {message}")


def recorded_paces(monkeypatch, module: str) -> list[int]:
    """The amounts `module` asks the bucket for (the real pace still runs)."""
    asked: list[int] = []
    real_pace = throttle.pace

    def pace(bucket, amount, cancel=None):
        asked.append(amount)
        real_pace(bucket, amount, cancel)
    monkeypatch.setattr(f"backupd.destinations.gdrive.{module}.pace", pace)
    return asked


@pytest.fixture
def limited(drive, sa_file):
    destination = DriveDestination(gdrive_config(drive, sa_file, bandwidth_limit=1 << 40), retry_base=0.01)
    yield destination
    destination.close()


def test_an_upload_asks_the_bucket_for_every_byte_it_sends(drive, limited, big_archive, monkeypatch):
    asked = recorded_paces(monkeypatch, "upload")
    path, meta = big_archive
    stored = limited.store(path, meta)
    assert drive.content(stored.file_id) == path.read_bytes()
    assert sum(asked) == meta.size == drive.bytes_received
    assert max(asked) == CHUNK and len(asked) == 21


def test_a_download_asks_the_bucket_for_every_byte_it_fetches(limited, big_archive, tmp_path, monkeypatch):
    asked = recorded_paces(monkeypatch, "download")
    path, meta = big_archive
    limited.store(path, meta)
    limited.fetch(meta.name, tmp_path / "fetched")
    assert (tmp_path / "fetched").read_bytes() == path.read_bytes()
    assert sum(asked) == meta.size and max(asked) == CHUNK
