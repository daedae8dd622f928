"""The differential benchmark's trees: a mixed tree with one append-only log, and its seeded daily change.

A tree holds many small files (bench.datasets' generator), some mid-size files of text-like and random
blocks, and one log of text lines. A day's change modifies some files (a small one rewritten, a larger one
with one block overwritten in place), adds new small files, deletes others and appends to the log; each day
is drawn from its own seed, so the same spec gives the same week on every run.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from . import datasets
from .datasets import BLOCK, MiB, SEED, Spec

KiB = 1024
LOG = "logs/app.log"


@dataclass(frozen=True)
class TreeSpec:
    """What the tree holds and what one day changes in it."""

    name: str
    small: Spec                 # bench.datasets' small files (its big files unused)
    mid_files: int
    mid_min: int
    mid_max: int
    log_size: int
    modified: int               # files changed per day (the log not among them)
    new: int
    deleted: int
    appended: int               # bytes appended to the log per day
    days: int
    mid_text_share: float = 0.4


SPECS = {spec.name: spec for spec in (
    TreeSpec("week", Spec("week-small", 20_000, KiB, 16 * KiB), 60, 4 * MiB, 16 * MiB, 215_000_000,
             200, 50, 50, 5 * MiB, 7),
    TreeSpec("quick", Spec("quick-small", 300, KiB, 16 * KiB), 4, 256 * KiB, MiB, 2 * MiB, 20, 5, 5, 64 * KiB, 2),
    # the memory figure: 200k small files (a 200k-file full manifest), one day of a 1% change, no log
    TreeSpec("rss", Spec("rss-small", 200_000, 100, 500), 0, 0, 0, 0, 2000, 500, 500, 0, 1),
    TreeSpec("quick-rss", Spec("quick-rss-small", 2_000, 100, 500), 0, 0, 0, 0, 20, 5, 5, 0, 1),
)}


def build(spec: TreeSpec, root: Path) -> dict:
    """Write the day-0 tree under `root` (which must not exist); its summary."""
    content = datasets._Content(SEED)
    root.mkdir(parents=True)
    datasets._small_files(spec.small, root / "small", content)
    rng = content.rng
    for index in range(spec.mid_files):
        path = root / "mid" / f"m{index:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(spec.mid_min, spec.mid_max)
        with open(path, "wb") as handle:
            for offset in range(0, size, BLOCK):
                handle.write(content.block(min(BLOCK, size - offset), spec.mid_text_share))
    if spec.log_size:
        (root / LOG).parent.mkdir(parents=True)
        with open(root / LOG, "wb") as handle:
            for offset in range(0, spec.log_size, BLOCK):
                handle.write(content.text(min(BLOCK, spec.log_size - offset)))
    return datasets.summary(root)


def _files(root: Path) -> list[str]:
    """Every regular file of the tree but the log, relative to `root`, in a fixed order."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        found += [os.path.relpath(os.path.join(folder, name), root) for name in sorted(names)]
    return [path for path in found if path != LOG]


def change(spec: TreeSpec, root: Path, day: int) -> dict:
    """Apply day `day`'s change (day >= 1) to the tree; what was done."""
    content = datasets._Content(SEED + day)
    rng = content.rng
    files = _files(root)
    modified = rng.sample(files, spec.modified)
    spared = set(modified)
    deleted = rng.sample([path for path in files if path.startswith("small/") and path not in spared],
                         spec.deleted)
    for path in modified:
        _modify(root / path, content, spec)
    for path in deleted:
        os.unlink(root / path)
    folders = sorted({os.path.dirname(path) for path in files if path.startswith("small/")})
    for index in range(spec.new):
        size = rng.randint(spec.small.small_min, spec.small.small_max)
        (root / rng.choice(folders) / f"n{day:02d}-{index:04d}.txt").write_bytes(content.text(size))
    if spec.appended:
        with open(root / LOG, "ab") as handle:
            handle.write(content.text(spec.appended))
    return {"modified": len(modified), "new": spec.new, "deleted": len(deleted), "appended": spec.appended}


def _modify(path: Path, content: datasets._Content, spec: TreeSpec) -> None:
    """A small file rewritten (a new size), a larger one with one block overwritten in place."""
    size = path.stat().st_size
    if size <= spec.small.small_max:
        size = content.rng.randint(spec.small.small_min, spec.small.small_max)
        path.write_bytes(content.text(size) if path.suffix == ".txt" else content.random(size))
        return
    length = min(BLOCK, size)
    with open(path, "r+b") as handle:
        handle.seek(content.rng.randrange(0, size - length + 1))
        handle.write(content.block(length, spec.mid_text_share))
