"""Memory does not grow with the number of files: no per-member state is kept while archiving."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FILES = 40_000

# Runs in a fresh interpreter (the pytest process itself would blur the numbers): archives the tree,
# sampling VmRSS every 4000 files.
PROBE = """
import json, sys
from pathlib import Path
from backupd.archive.writer import ArchiveWriter
from backupd.config import SourceConfig
from backupd.sources.directory import DirectorySource

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

class Probe:
    def __init__(self, sink):
        self.sink, self.seen, self.samples = sink, 0, []
    def __getattr__(self, name):
        return getattr(self.sink, name)
    def add_files(self, batch, dir_fd=None):
        self.sink.add_files(batch, dir_fd=dir_fd)
        self.seen += len(batch)
        if self.seen % 4000 == 0:
            self.samples.append(rss_kib())

root, archive = Path(sys.argv[1]), Path(sys.argv[2])
config = SourceConfig(name="many", type="directory",
                      options={"path": root, "exclude": (), "one_file_system": False})
with ArchiveWriter(archive, header={"job": "memory"}) as writer:
    probe = Probe(writer.source("many"))
    DirectorySource(config).write(probe, archive.parent)
    stats = writer.finish()
print(json.dumps({"samples": probe.samples, "members": stats.members}))
"""


def test_rss_is_flat_from_16k_to_40k_files(tmp_path):
    """The first ~12k files warm up fixed buffers (zstd jobs, the buffer pool); after that, flat."""
    root = tmp_path / "many"
    for d in range(40):
        folder = root / f"d{d:02d}"
        folder.mkdir(parents=True)
        for i in range(FILES // 40):
            (folder / f"file-with-a-longish-name-{i:05d}.txt").write_bytes(b"%d\n" % i)
    out = subprocess.run([sys.executable, "-c", PROBE, str(root), str(tmp_path / "a.tar.zst.tmp"),
                          str(FILES)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    result = json.loads(out.stdout)
    samples = result["samples"]
    assert result["members"] == FILES + 41 and len(samples) == FILES // 4000
    assert samples[-1] - samples[3] < 1024, f"RSS grew over the files: {samples} KiB"
