"""Memory does not grow with the number of files: no per-member state is kept while archiving."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from backupd.archive import stream

FILES = 24_000
SAMPLE_EVERY = 3000
# the most pooled buffers a stream can need (all in flight at once): the producer's current one and a large
# file's piece, DEPTH queued and one compressing; the gatherer's, OUT_DEPTH queued and one being written
POOL_LIMIT = (2 + stream.DEPTH + 1) + (1 + stream.OUT_DEPTH + 1)

# Runs in a fresh interpreter (the pytest process itself would blur the numbers): archives the tree,
# sampling VmRSS and the KiB and count of the stream's pooled buffers every argv[3] files. The pools make a
# buffer only when every one is in flight, so they may reach their (fixed) high-water mark late: a 1 MiB step
# of RSS at any sample when the compressor falls behind for a moment; the test subtracts them and bounds them.
PROBE = """
import json, sys
from pathlib import Path
import backupd.archive.stream as stream
from backupd.archive.writer import ArchiveWriter
from backupd.config import DirectorySourceConfig
from backupd.sources.directory import DirectorySource

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

pooled = []

def pooled_buffer(size):
    pooled.append(size)
    return bytearray(size)

stream.bytearray = pooled_buffer        # the stream makes its pooled buffers by this name

class Probe:
    def __init__(self, sink):
        self.sink, self.seen, self.samples = sink, 0, []
    def __getattr__(self, name):
        return getattr(self.sink, name)
    def add_files(self, batch, dir_fd=None):
        self.sink.add_files(batch, dir_fd=dir_fd)
        self.seen += len(batch)
        if self.seen % int(sys.argv[3]) == 0:
            self.samples.append((rss_kib(), sum(pooled) >> 10, len(pooled)))

root, archive = Path(sys.argv[1]), Path(sys.argv[2])
config = DirectorySourceConfig(name="many", path=root)
with ArchiveWriter(archive, header={"job": "memory"}) as writer:
    probe = Probe(writer.source("many"))
    DirectorySource(config).write(probe, archive.parent)
    stats = writer.finish()
print(json.dumps({"samples": probe.samples, "members": stats.members}))
"""


@pytest.fixture
def scratch(tmp_path):
    """Memory scratch space when there is some (creating many files on a busy disk is slow)."""
    if not Path("/dev/shm").is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="backupd-memory-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_rss_is_flat_from_12k_to_24k_files(scratch):
    """The first files warm up fixed buffers (zstd jobs, the buffer pool); after that, flat."""
    root = scratch / "many"
    filler = b"x" * 2000
    for d in range(24):
        folder = root / f"d{d:02d}"
        folder.mkdir(parents=True)
        for i in range(FILES // 24):
            (folder / f"file-with-a-longish-name-{i:05d}.txt").write_bytes(b"%d\n" % i + filler)
    out = subprocess.run([sys.executable, "-c", PROBE, str(root), str(scratch / "a.tar.zst.tmp"),
                          str(SAMPLE_EVERY)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    result = json.loads(out.stdout)
    rss, pooled_kib, pooled = zip(*result["samples"])
    samples = [kib - pool for kib, pool in zip(rss, pooled_kib)]    # RSS without the pooled buffers
    assert result["members"] == FILES + 25 and len(samples) == FILES // SAMPLE_EVERY
    assert 0 < pooled[-1] <= POOL_LIMIT, f"pooled buffers made: {pooled}"
    assert samples[-1] - samples[3] < 1024, f"RSS grew over the files: {samples} KiB (RSS {rss}, pool {pooled})"
