"""The naive Python archiver the issue compares against: `tarfile` streaming into `zstandard` (threads=-1)."""
from __future__ import annotations

import sys
import tarfile

import zstandard


def main(source: str, output: str) -> int:
    compressor = zstandard.ZstdCompressor(level=3, threads=-1)
    with open(output, "wb") as raw, compressor.stream_writer(raw) as stream, \
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname=".")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
