"""Encryption benchmark: the same backup of the mixed dataset with and without encryption, in the same run.

Variants, round-robin, each run a fresh child writing into a fresh folder (bench.archiving's conventions):
- `backupd` / `backupd+age`: `backupd --config CFG --once bench`, the daemon's own run path, without and with
  `encrypt_to` (one X25519 recipient made by age-keygen, untimed): the figures of the goal;
- `pipeline`, `pipeline+age-cli`, `pipeline+pyrage`: bench.encryption_child, the archive pipeline alone
  (directory source -> tar -> zstd -> encryptor -> sha256 + file) with no encryptor, the `age` program as a
  child process (bench/age_cli_stage.py), and pyrage (bindings to the Rust age crate, what backupd uses) as
  the encryptor stage: the comparison the choice rests on. CPU time is the steadier figure on a busy machine.
Each encrypted variant's median and fastest wall time and its CPU time are given as a ratio to its
unencrypted twin's: on a machine other work shares, the fastest runs and the CPU time (user + system of the
child and its descendants) are the steadier figures.
"""
from __future__ import annotations

import functools
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import daemon_cmd, datasets
from .archiving import round_robin
from .measure import MiB, REPO_ROOT, Invocation, tool_version

RATIO_GOAL = 1.25           # backup with encryption <= 1.25x the same backup without
RSS_GOAL_MIB = 100.0


@dataclass(frozen=True)
class Variant:
    name: str
    base: str | None                                    # the unencrypted twin it is compared with
    prepare: Callable[..., Invocation]     # (dataset, fresh run folder, recipient=) -> the timed command
    missing: Callable[[], str | None] = lambda: None


def _age_missing() -> str | None:
    return None if shutil.which("age") else "`age` is not installed (apt-get install age)"


def _pyrage_missing() -> str | None:
    try:
        import pyrage  # noqa: F401
    except ImportError:
        return "pyrage is not installed (pip install pyrage)"
    return None


def _daemon(encrypted: bool):
    def prepare(data: Path, run: Path, recipient: str) -> Invocation:
        keys = {"encrypt_to": [recipient]} if encrypted else {}
        config = daemon_cmd.write_config(run, data, **keys)
        return Invocation(daemon_cmd.once_argv(config), cwd=run, output=run / "out", env=daemon_cmd.ENV)
    return prepare


def _pipeline(kind: str):
    def prepare(data: Path, run: Path, recipient: str) -> Invocation:
        out = run / "archive"
        argv = [sys.executable, "-m", "bench.encryption_child", kind, str(data), str(out), recipient]
        return Invocation(argv, cwd=REPO_ROOT, output=out, env=daemon_cmd.ENV)
    return prepare


VARIANTS = {variant.name: variant for variant in (
    Variant("backupd", None, _daemon(False), daemon_cmd.once_missing),
    Variant("backupd+age", "backupd", _daemon(True), lambda: daemon_cmd.once_missing() or _pyrage_missing()),
    Variant("pipeline", None, _pipeline("none")),
    Variant("pipeline+age-cli", "pipeline", _pipeline("age-cli"), _age_missing),
    Variant("pipeline+pyrage", "pipeline", _pipeline("pyrage"), _pyrage_missing),
)}


def missing() -> str | None:
    return _pyrage_missing()


def run(args, work: Path, log) -> dict:
    """The benchmark as `python -m bench --only encryption` runs it (the quick dataset with --quick)."""
    data = datasets.ensure(datasets.SPECS["quick-mixed" if args.quick else "mixed"], args.data_dir, log=log)
    return bench_encryption(data, work / "encryption", max(args.repeat, 3), log=log)


def make_recipient() -> str:
    """The public key of a fresh X25519 identity (untimed; the secret is not kept: nothing is decrypted)."""
    import pyrage
    return str(pyrage.x25519.Identity.generate().to_public())


def bench_encryption(data: Path, work: Path, repeat: int, log=print) -> dict:
    """Every variant `repeat` times on `data`, round-robin; summaries with ratios to the unencrypted twin."""
    recipient = make_recipient()
    results: dict[str, dict] = {}
    prepares = {}
    for name, variant in VARIANTS.items():
        reason = variant.missing()
        if reason:
            results[name] = {"unavailable": reason}
        else:
            prepares[name] = functools.partial(variant.prepare, recipient=recipient)
    results.update(round_robin(data, work, prepares, repeat, log))
    results = {name: results[name] for name in VARIANTS}
    _add_ratios(results)
    return {"dataset": datasets.summary(data), "recipient": "one X25519 (age1...)",
            "age": tool_version(["age", "--version"]), "variants": results}


def _add_ratios(results: dict) -> None:
    for name, variant in VARIANTS.items():
        entry, base = results[name], results.get(variant.base or "", {})
        if "wall_median" in entry and "wall_median" in base:
            for figure in ("wall_median", "wall_min", "cpu_median", "peak_rss_max"):
                entry[f"{figure}_ratio"] = entry[figure] / base[figure]


def _row(name: str, entry: dict) -> str:
    if "wall_median" not in entry:
        status = "unavailable" if "unavailable" in entry else "error"
        return f"| {name} | {status}: {entry.get(status)} ||||||||"
    ratios = [f"{entry[key]:.2f}" if key in entry else "-"
              for key in ("wall_median_ratio", "wall_min_ratio", "cpu_median_ratio")]
    return (f"| {name} | {entry['wall_median']:.2f} | {entry['wall_min']:.2f}-{entry['wall_max']:.2f} | "
            f"{' | '.join(ratios)} | {entry['cpu_median']:.2f} | {entry['peak_rss_max'] / MiB:.1f} "
            f"| {entry['output_bytes'] / MiB:.1f} |")


def table(result: dict) -> str:
    """The variants as a Markdown table."""
    info = result["dataset"]
    return "\n".join([
        f"### encryption: {info['files']} files, {info['bytes'] / MiB:.1f} MiB (age {result['age']}, "
        f"{result['recipient']})",
        "| variant | wall median (s) | min-max (s) | x unencrypted | x (fastest runs) | CPU x | CPU (s) "
        "| peak RSS (MiB) | output (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_row(name, entry) for name, entry in result["variants"].items())])


def _variant(results: dict, name: str) -> dict:
    return results.get("encryption", {}).get("variants", {}).get(name, {})


GOALS = [
    (f"encryption: backupd+age wall <= {RATIO_GOAL}x backupd",
     lambda r: (_variant(r, "backupd+age").get("wall_median_ratio"), RATIO_GOAL)),
    (f"encryption: backupd+age peak RSS (MiB) <= {RSS_GOAL_MIB:.0f}",
     lambda r: ((_variant(r, "backupd+age").get("peak_rss_max") or 0) / MiB or None, RSS_GOAL_MIB)),
]
