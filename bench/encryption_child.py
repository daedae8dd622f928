"""One archive of a folder through backupd's real archive pipeline (directory source -> tar -> zstd ->
[encryptor] -> sha256 + file), with the encryptor the encryption benchmark asks for (none, the `age` program
as a child process, or pyrage as backupd itself encrypts):

    python -m bench.encryption_child none|age-cli|pyrage DATA OUT [RECIPIENT...]
"""
from __future__ import annotations

import sys
from pathlib import Path

from backupd.archive.encrypt import AgeEncryptor
from backupd.archive.writer import ArchiveWriter
from backupd.config import DirectorySourceConfig
from backupd.sources import registry

from .age_cli_stage import AgeCliEncryptor

# pyrage is what backupd uses (backupd.archive.encrypt); the age program is the alternative measured
ENCRYPTORS = {"none": lambda recipients: None, "age-cli": AgeCliEncryptor, "pyrage": AgeEncryptor}
HEADER = {"job": "bench", "run_id": "0" * 32, "host": "bench", "started": "2026-01-01T00:00:00+00:00"}


def main(argv: list[str]) -> int:
    kind, data, out, *recipients = argv
    source = registry.build(DirectorySourceConfig(name="data", path=Path(data)))
    workdir = Path(out).parent / "work"
    workdir.mkdir(exist_ok=True)
    with ArchiveWriter(Path(out), header=HEADER, encryptor=ENCRYPTORS[kind](recipients)) as writer:
        source.write(writer.source(source.name), workdir)
        stats = writer.finish()
    print(f"{kind}: {stats.size} bytes, sha256 {stats.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
