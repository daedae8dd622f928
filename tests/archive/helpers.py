"""Shared by the archive and source tests: write archives with the real writer, read them with real CLIs."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

from backupd.archive.writer import ArchiveWriter
from backupd.config import SOURCE_TYPES, SourceConfig

HEADER = {"job": "daily", "run_id": "r-0001", "host": "testhost", "started": "2024-05-01T03:00:00+00:00"}


def source_config(name: str, type_: str, **options) -> SourceConfig:
    """The `type_` source's config class with `options`; every other key keeps its configured default."""
    return SOURCE_TYPES[type_](name=name, **options)


def write_archive(path: Path, sources, workdir: Path, **kwargs):
    """Run `sources` (objects with .name and .write) through an ArchiveWriter; returns its stats."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ArchiveWriter(path, header=HEADER, **kwargs) as writer:
        for source in sources:
            source.write(writer.source(source.name), workdir)
        return writer.finish()


def extract(archive: Path, dest: Path) -> Path:
    """`zstd -dc ARCHIVE | tar -x` exactly as a user without backupd would run it."""
    dest.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(["zstd", "-dc", str(archive)], stdout=subprocess.PIPE) as zstd:
        tar = subprocess.run(["tar", "-x", "-C", str(dest), "-f", "-"], stdin=zstd.stdout,
                             capture_output=True, text=True)
        zstd.stdout.close()
    assert zstd.returncode == 0, "zstd -dc failed"
    assert tar.returncode == 0 and not tar.stderr, tar.stderr
    return dest


def listing(archive: Path) -> list[str]:
    """Member names as `tar -t` prints them."""
    zstd = subprocess.run(["zstd", "-dc", str(archive)], capture_output=True, check=True)
    tar = subprocess.run(["tar", "-t", "--quoting-style=literal"], input=zstd.stdout, capture_output=True, check=True)
    return tar.stdout.decode("utf-8", "surrogateescape").splitlines()


def read_manifest(dest: Path) -> dict:
    return json.loads((dest / "MANIFEST.json").read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_state(root: Path) -> dict[str, tuple]:
    """Relative path -> (kind, content or target, permission bits, whole-second mtime)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", None, stat.S_IMODE(st.st_mode), int(st.st_mtime))
            else:
                state[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return state
