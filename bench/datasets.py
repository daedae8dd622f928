"""Deterministic benchmark datasets: generated once from a fixed seed, reused while their stamp matches.

A dataset is a tree of small files spread over folders plus a few large files. File contents mix
text-like blocks (log lines: zstd -3 shrinks them several times) and random blocks (already compressed
media), so compression ratios are realistic. Generation writes into a fresh `.partial-*` folder and
renames it at the end: a half-written tree is never taken for a finished one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT_VERSION = 1
SEED = 20240505
STAMP = ".bench-dataset.json"
MiB = 1024 * 1024
BLOCK = MiB
FILES_PER_DIR = 500


@dataclass(frozen=True)
class Spec:
    """What a dataset holds; its stamp records this so a changed spec is generated afresh."""

    name: str
    small_files: int
    small_min: int
    small_max: int
    big_files: int = 0
    big_size: int = 0
    text_share: float = 0.6        # share of text-like content (the rest is random bytes)


SPECS = {spec.name: spec for spec in (
    Spec("mixed", 20_000, 1024, 16 * 1024, big_files=4, big_size=200 * MiB),
    Spec("tiny", 200_000, 100, 500),
    Spec("mixed-8g", 20_000, 1024, 16 * 1024, big_files=40, big_size=200 * MiB),
    Spec("quick-mixed", 300, 1024, 16 * 1024, big_files=2, big_size=3 * MiB),
    Spec("quick-tiny", 2_000, 100, 500),
)}

_WORDS = ("backup daemon request error warning info debug user session token disk write read "
          "service started stopped connection timeout retry upload chunk archive manifest job "
          "scheduler cron socket status ready reload config path file folder size bytes sha256 "
          "GET POST PUT /api/v1/items /static/app.js 200 404 500 ms client server host").split()


def expected_bytes(spec: Spec) -> int:
    """Roughly how many bytes the dataset holds (the small files' mean size times their count)."""
    return spec.small_files * (spec.small_min + spec.small_max) // 2 + spec.big_files * spec.big_size


class _Content:
    """Seeded generator of text-like and random byte strings."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.lines = [self._line(i) for i in range(20_000)]
        self.clock = 1_700_000_000

    def _line(self, i: int) -> str:
        words = " ".join(self.rng.choices(_WORDS, k=self.rng.randint(4, 14)))
        return f"[{i % 97:02d}] {words} id={self.rng.getrandbits(32):08x}"

    def text(self, size: int) -> bytes:
        out, total = [], 0
        while total < size:
            self.clock += self.rng.randint(0, 3)
            line = f"{self.clock} {self.rng.choice(self.lines)}\n"
            out.append(line)
            total += len(line)
        return "".join(out).encode()[:size]

    def random(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def block(self, size: int, text_share: float) -> bytes:
        return self.text(size) if self.rng.random() < text_share else self.random(size)


def stamp_of(root: Path) -> dict | None:
    try:
        return json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _stamp_for(spec: Spec) -> dict:
    return {"format": FORMAT_VERSION, "seed": SEED, "spec": asdict(spec)}


def ensure(spec: Spec, data_dir: Path, log=print) -> Path:
    """Return the folder holding `spec`'s dataset, generating it first if absent or stale."""
    root = data_dir / spec.name
    if stamp_of(root) == _stamp_for(spec):
        return root
    data_dir.mkdir(parents=True, exist_ok=True)
    if root.exists():   # stale: set it aside (never delete-and-recreate right before timing)
        root.rename(data_dir / f".stale-{spec.name}-{os.getpid()}")
    partial = data_dir / f".partial-{spec.name}-{os.getpid()}"
    log(f"generating dataset {spec.name} (~{expected_bytes(spec) / MiB:.0f} MiB, "
        f"{spec.small_files + spec.big_files} files) in {root}")
    generate(spec, partial)
    (partial / STAMP).write_text(json.dumps(_stamp_for(spec), sort_keys=True))
    partial.rename(root)
    return root


def generate(spec: Spec, root: Path) -> None:
    """Write the dataset's files under `root` (which must not exist yet)."""
    content = _Content(SEED)
    root.mkdir(parents=True)
    _small_files(spec, root / "small", content)
    for index in range(spec.big_files):
        _big_file(spec, root / "big" / f"blob-{index:03d}.bin", content)


def _small_files(spec: Spec, root: Path, content: _Content) -> None:
    rng = content.rng
    folder = None
    for index in range(spec.small_files):
        if index % FILES_PER_DIR == 0:
            folder = root / f"d{index // FILES_PER_DIR:04d}"
            folder.mkdir(parents=True)
        size = rng.randint(spec.small_min, spec.small_max)
        suffix = ".txt" if rng.random() < spec.text_share else ".dat"
        data = content.text(size) if suffix == ".txt" else content.random(size)
        with open(folder / f"f{index:06d}{suffix}", "wb") as handle:
            handle.write(data)


def _big_file(spec: Spec, path: Path, content: _Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for _ in range(spec.big_size // BLOCK):
            handle.write(content.block(BLOCK, spec.text_share))
        handle.write(content.random(spec.big_size % BLOCK))


def remove_stale(data_dir: Path) -> None:
    """Delete trees set aside by `ensure` (call outside any timed section)."""
    if data_dir.is_dir():
        for path in data_dir.glob(".stale-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in data_dir.glob(".partial-*"):
            shutil.rmtree(path, ignore_errors=True)


def summary(root: Path) -> dict:
    """Count files and bytes of a generated dataset (read from its tree, not its spec)."""
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name != STAMP:
                files += 1
                size += os.lstat(os.path.join(folder, name)).st_size
    return {"files": files, "bytes": size}
