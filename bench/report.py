"""The machine description, the readable tables and the goals of the performance issue, checked against figures."""
from __future__ import annotations

import os
import platform
from pathlib import Path

from . import encryption_bench, restore_bench
from .measure import MiB, tool_version

VERSION_FLAGS = {"zstd": "--version", "tar": "--version", "restic": "version", "borg": "--version",
                 "curl": "--version"}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def machine() -> dict:
    """nproc, CPU, memory, kernel, Python and the versions of every tool compared."""
    import zstandard
    return {"nproc": os.cpu_count(), "cpu": _cpu_model(), "memory_bytes": _mem_total(),
            "kernel": platform.release(), "python": platform.python_version(),
            "python_zstandard": zstandard.__version__,
            **{tool: tool_version([tool, flag]) for tool, flag in VERSION_FLAGS.items()}}


def _mib(value) -> str:
    return f"{value / MiB:.1f}"


def archive_table(name: str, result: dict) -> str:
    """One dataset's archivers as a Markdown table."""
    info = result["dataset"]
    lines = [f"### {name}: {info['files']} files, {_mib(info['bytes'])} MiB",
             "| tool | wall median (s) | min-max (s) | x tar|zstd | CPU (s) | peak RSS (MiB) | output (MiB) | size x tar |",
             "|---|---|---|---|---|---|---|---|"]
    for tool, entry in result["tools"].items():
        if "wall_median" not in entry:
            reason = entry.get("unavailable") or entry.get("error")
            lines.append(f"| {tool} | {'unavailable' if 'unavailable' in entry else 'error'}: {reason} |||||||")
            continue
        lines.append(f"| {tool} | {entry['wall_median']:.2f} | {entry['wall_min']:.2f}-{entry['wall_max']:.2f} "
                     f"| {entry.get('wall_ratio', float('nan')):.2f} | {entry['cpu_median']:.2f} "
                     f"| {_mib(entry['peak_rss_max'])} | {_mib(entry['output_bytes'])} "
                     f"| {entry.get('size_ratio', float('nan')):.2f} |")
    notes = [f"{tool}: {entry['tool']}" for tool, entry in result["tools"].items() if entry.get("tool")]
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) if notes else "")


def daemon_lines(results: dict) -> list[str]:
    """The idle/ready/ctl/drive figures, one line each (or why they are missing)."""
    formats = {
        "ready": lambda r: f"exec -> READY=1: median {r['ready_median']:.3f} s "
                           f"(min {r['ready_min']:.3f}, max {r['ready_max']:.3f}, {r['runs']} starts)",
        "idle": lambda r: f"idle over {r['window_s']:.0f} s: RSS {_mib(r['rss_end'])} MiB (max "
                          f"{_mib(r['rss_max'])}, HWM {_mib(r['hwm'])}), CPU {r['cpu_per_minute_s']:.3f} s/min "
                          f"(startup {r['cpu_startup_s']:.2f} s)",
        "ctl": lambda r: f"backupctl status: median {r['ctl_median'] * 1000:.0f} ms vs python3 -c pass "
                         f"{r['python_median'] * 1000:.0f} ms = {r['ratio']:.2f}x ({r['runs']} runs)",
        "drive": lambda r: f"Drive upload of {_mib(r['bytes'])} MiB (chunk {_mib(r['chunk_size'])} MiB): "
                           f"backupd {r['backupd_mib_s']:.0f} MiB/s (store {r['backupd_store_s']:.2f} s, process "
                           f"{r['backupd_wall_s']:.2f} s) vs curl -T {r['curl_mib_s']:.0f} MiB/s = "
                           f"{r['throughput_ratio']:.2f}x; memory of the upload {_mib(r['upload_memory'])} MiB "
                           f"(peak RSS {_mib(r['peak_rss'])}, curl {_mib(r['curl_peak_rss'])})",
    }
    lines = []
    for key, fmt in formats.items():
        entry = results.get(key)
        if entry is None:
            continue
        reason = entry.get("unavailable") or entry.get("error")
        lines.append(f"- {key}: {'unavailable: ' + reason if 'unavailable' in entry else 'error: ' + reason}"
                     if reason else f"- {fmt(entry)}")
    return lines


def _tool(results: dict, dataset: str, tool: str) -> dict:
    return results.get("archive", {}).get(dataset, {}).get("tools", {}).get(tool, {})


def _faster(results: dict, dataset: str, other: str):
    ours, theirs = _tool(results, dataset, "backupd"), _tool(results, dataset, other)
    if "wall_median" not in ours or "wall_median" not in theirs:
        return None
    return ours["wall_median"], theirs["wall_median"]


def _rss_within(results: dict, dataset: str, limit: float = 0.10):
    base, other = _tool(results, "mixed", "backupd"), _tool(results, dataset, "backupd")
    if "peak_rss_max" not in base or "peak_rss_max" not in other:
        return None
    return other["peak_rss_max"] / base["peak_rss_max"] - 1.0, limit   # signed: growth is what matters


def _get(results: dict, *keys):
    value = results
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _max_rss(results: dict):
    values = [_tool(results, d, "backupd").get("peak_rss_max") for d in results.get("archive", {})]
    values = [v for v in values if v]
    return (max(values) / MiB, 100.0) if values else None


AT_LEAST = {"Drive throughput >= 0.7x curl -T"}   # goals met when the figure is at least the limit


GOALS = [   # (goal, figure getter -> (figure, limit) or None)
    ("mixed: backupd wall <= 1.2x tar|zstd", lambda r: (_tool(r, "mixed", "backupd").get("wall_ratio"), 1.2)),
    ("mixed: backupd faster than restic", lambda r: _faster(r, "mixed", "restic")),
    ("mixed: backupd faster than borg", lambda r: _faster(r, "mixed", "borg")),
    ("tiny: backupd wall <= 2.0x tar|zstd", lambda r: (_tool(r, "tiny", "backupd").get("wall_ratio"), 2.0)),
    ("tiny: backupd faster than restic", lambda r: _faster(r, "tiny", "restic")),
    ("tiny: backupd faster than borg", lambda r: _faster(r, "tiny", "borg")),
    ("backup peak RSS (MiB) <= 100", _max_rss),
    ("peak RSS flat: tiny at most 10% above mixed", lambda r: _rss_within(r, "tiny")),
    ("peak RSS flat: mixed-8g at most 10% above mixed", lambda r: _rss_within(r, "mixed-8g")),
    ("Drive throughput >= 0.7x curl -T", lambda r: (_get(r, "drive", "throughput_ratio"), 0.7)),
    ("Drive upload memory (MiB) <= ~1 chunk (1.5x chunk_size)",
     lambda r: ((_get(r, "drive", "upload_memory") or 0) / MiB or None,
                1.5 * (_get(r, "drive", "chunk_size") or 0) / MiB)),
    ("idle RSS (MiB) <= 45", lambda r: ((_get(r, "idle", "rss_max") or 0) / MiB or None, 45.0)),
    ("idle CPU <= 0.1 s per minute", lambda r: (_get(r, "idle", "cpu_per_minute_s"), 0.1)),
    ("exec -> READY=1 <= 0.5 s", lambda r: (_get(r, "ready", "ready_median"), 0.5)),
    ("backupctl status <= 1.5x python3 -c pass", lambda r: (_get(r, "ctl", "ratio"), 1.5)),
    *encryption_bench.GOALS,
    *restore_bench.GOALS,
]


def goals(results: dict) -> list[dict]:
    """Each goal with its figure, limit and verdict ('not measured' when a figure is missing)."""
    out = []
    for text, getter in GOALS:
        pair = getter(results)
        if not pair or pair[0] is None:
            out.append({"goal": text, "status": "not measured"})
            continue
        figure, limit = pair
        met = figure >= limit if text in AT_LEAST else figure <= limit
        out.append({"goal": text, "figure": round(figure, 4), "limit": round(limit, 4),
                    "status": "met" if met else "missed"})
    return out


def render(results: dict) -> str:
    """The whole run as readable Markdown."""
    parts = [f"## backupd benchmark: {results['name']} ({results['started']})",
             "machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items())]
    parts += [archive_table(name, result) for name, result in results.get("archive", {}).items()]
    if daemon_lines(results):
        parts.append("\n".join(["### daemon", *daemon_lines(results)]))
    if "variants" in results.get("encryption", {}):
        parts.append(encryption_bench.table(results["encryption"]))
    if "restorers" in results.get("restore", {}):
        parts.append(restore_bench.table(results["restore"]))
    rows = [f"| {g['goal']} | {g.get('figure', '-')} | {g.get('limit', '-')} | {g['status']} |"
            for g in results.get("goals", [])]
    parts.append("\n".join(["### goals", "| goal | figure | limit | status |", "|---|---|---|---|", *rows]))
    return "\n\n".join(parts) + "\n"
