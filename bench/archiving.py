"""Archive benchmarks: every available archiver on one dataset, round-robin, each run in a fresh child and folder."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from . import datasets
from .baselines import BASELINE, RUNNERS
from .measure import REPO_ROOT, BenchError, run_once, summarize


def warm_cache(data: Path) -> None:
    """Read every file so the next tool sees a warm page cache (borg drops what it read from the cache)."""
    subprocess.run("tar -cf - . | cat > /dev/null", shell=True, cwd=data, check=True)


def bench_dataset(data: Path, work: Path, tools: list[str], repeat: int, log=print) -> dict:
    """Run each tool `repeat` times on `data`; return per-tool summaries with ratios to tar|zstd."""
    results: dict[str, dict] = {}
    available = {}
    for name in tools:
        reason = RUNNERS[name].missing()
        if reason:
            results[name] = {"unavailable": reason}
            log(f"  {name}: unavailable: {reason}")
        else:
            available[name] = RUNNERS[name].prepare
    for name, entry in round_robin(data, work, available, repeat, log).items():
        results[name] = {**entry, "tool": RUNNERS[name].describe()} if "wall_median" in entry else entry
    add_ratios(results)
    return {"dataset": {"path": _shown(data), **datasets.summary(data)},
            "tools": {name: results[name] for name in tools}}


def round_robin(data: Path, work: Path, prepares: dict, repeat: int, log=print) -> dict[str, dict]:
    """Each command prepares[name](data, fresh run folder) gives, `repeat` times, round-robin with a warm page
    cache; name -> its summary, or {"error": ...} for one that failed (it is not run again)."""
    samples: dict[str, list] = {name: [] for name in prepares}
    results: dict[str, dict] = {}
    for index in range(repeat):
        for name in list(samples):
            warm_cache(data)
            try:
                samples[name].append(one_run(prepares[name], data, work / f"{_slug(name)}-{index}"))
            except BenchError as exc:
                results[name] = {"error": str(exc)}
                log(f"  {name}: error: {exc}")
                del samples[name]
                continue
            log(f"  {name} run {index + 1}/{repeat}: {samples[name][-1].wall:.2f} s")
    return {**results, **{name: summarize(series) for name, series in samples.items()}}


def one_run(prepare, data: Path, run_dir: Path):
    """One timed run of prepare(data, run_dir)'s command into a fresh folder; the folder is removed afterwards,
    outside the timed section."""
    run_dir.mkdir(parents=True)
    os.sync()   # the previous run's dirty pages are written back now, not during this run
    try:
        invocation = prepare(data, run_dir)
        return run_once(invocation, run_dir.parent / f"{run_dir.name}.log")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def add_ratios(results: dict) -> None:
    """Wall time, output size and peak RSS of each tool relative to tar|zstd."""
    base = results.get(BASELINE, {})
    if "wall_median" not in base:
        return
    for entry in results.values():
        if "wall_median" in entry:
            entry["wall_ratio"] = entry["wall_median"] / base["wall_median"]
            entry["size_ratio"] = entry["output_bytes"] / max(base["output_bytes"], 1)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def _shown(path: Path) -> str:
    """A dataset path as results record it: relative to the checkout when inside it (no machine paths)."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if REPO_ROOT in resolved.parents else resolved.name
