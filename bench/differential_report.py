"""The differential benchmark's tables and goals (issue 15), from the figures bench.bench_differential measured."""
from __future__ import annotations

import statistics

from .measure import MiB

BYTES_GOAL = 1.3            # after a week: <= 1.3x restic's bytes on the destination
TIME_GOAL = 0.5             # a differential's backup time <= 0.5x a full's on the same tree
RESTORE_GOAL = 1.5          # full + differential restored <= 1.5x the full alone
RSS_GOAL_MIB = 100.0
FULL_JOB = "full every day"
DIFFERENTIALS = ("differential", "differential+delta")
RESTORE_GOALS = ("backupctl: full + differential", "backupctl: full + differential with a delta",
                 "tar -G: full + differential")
KIND_MARK = {"full": "F", "differential": "D", "snapshot": "", "-": "?"}


def _measured(week: dict) -> dict:
    return {name: entry["days"] for name, entry in week["variants"].items() if "days" in entry}


def daily_bytes(days: list[dict]) -> list[int]:
    """Bytes each run added to its destination."""
    totals = [day["total_bytes"] for day in days]
    return [total - before for total, before in zip(totals, [0, *totals[:-1]])]


def restic_bytes(week: dict) -> tuple[int, str]:
    """restic's bytes after the week, and where the figure comes from."""
    days = _measured(week).get("restic")
    if days:
        return days[-1]["total_bytes"], "restic, measured"
    if week["restic_reference"] is None:
        return None, "restic not measured"
    return week["restic_reference"], "restic not measured: the issue's prototype figure 0.70 GB"


def _loads(entries) -> str:
    loads = [entry["load"] for entry in entries]
    return f"{min(loads):.2f}-{max(loads):.2f}" if loads else "-"


def week_table(week: dict) -> str:
    measured = _measured(week)
    names = list(measured)
    info = week["tree"]
    lines = [f"### week: {info['files']} files, {info['bytes'] / MiB:.0f} MiB; MB stored each day "
             "(F full, D differential)",
             "| day | " + " | ".join(names) + " | load |", "|---" * (len(names) + 2) + "|"]
    stored = {name: daily_bytes(days) for name, days in measured.items()}
    for day in range(len(week["changes"])):
        cells = [f"{KIND_MARK[measured[n][day]['kind']]} {stored[n][day] / 1e6:.1f}" for n in names]
        lines.append(f"| {day} | " + " | ".join(cells) + f" | {_loads(measured[n][day] for n in names)} |")
    lines.append("| after the week | " + " | ".join(f"**{measured[n][-1]['total_bytes'] / 1e6:.1f}**"
                                               for n in names) + " | |")
    reference, origin = restic_bytes(week)
    if reference:
        lines.append("| x restic | " + " | ".join(f"{measured[n][-1]['total_bytes'] / reference:.2f}"
                                                 for n in names) + f" | ({origin}) |")
    for name, entry in week["variants"].items():
        if "unavailable" in entry:
            lines.append(f"\n{entry['unavailable']}")
    for name in DIFFERENTIALS:
        last = next((day for day in reversed(measured.get(name, [])) if "members" in day), None)
        if last:
            parts = ", ".join(f"{part} {size / 1e6:.1f}" for part, size in last["members"].items()
                              if part != "delta_members")
            lines.append(f"\n{name}, its last differential's members (raw MB): {parts}; "
                         f"{last['members']['delta_members']} delta member(s)")
    return "\n".join(lines)


def time_ratios(week: dict, name: str, figure: str = "wall") -> list[float]:
    """A differential variant's wall (or CPU) time over the full job's, on each day it made a differential."""
    measured = _measured(week)
    if name not in measured or FULL_JOB not in measured:
        return []
    return [ours[figure] / full[figure] for ours, full in zip(measured[name], measured[FULL_JOB])
            if ours["kind"] == "differential"]


def time_table(week: dict) -> str:
    measured = _measured(week)
    names = list(measured)
    lines = ["### backup wall time (s) / CPU time (s), each run on the same tree that day",
             "| day | " + " | ".join(names) + " | load |", "|---" * (len(names) + 2) + "|"]
    for day in range(len(week["changes"])):
        lines.append(f"| {day} | " + " | ".join(f"{measured[n][day]['wall']:.2f} / {measured[n][day]['cpu']:.2f}"
                                                for n in names)
                     + f" | {_loads(measured[n][day] for n in names)} |")
    lines.append("\npeak RSS of each run and its children, the week's largest (MiB): " + ", ".join(
        f"{name} {max(day['peak_rss'] for day in days) / MiB:.0f}" for name, days in measured.items()))
    for name in DIFFERENTIALS:
        for figure in ("wall", "cpu"):
            ratios = time_ratios(week, name, figure)
            if ratios:
                lines.append(f"\n{name} x {FULL_JOB}, {figure} time (differential days): "
                             + ", ".join(f"{r:.2f}" for r in ratios) + f"; median {statistics.median(ratios):.2f}")
    return "\n".join(lines)


def restore_table(restore: dict) -> str:
    lines = [f"### restore into a fresh folder on {restore['into']} (the full alone: the full job's last; a set: "
             "the differential job's full + last differential)",
             "| restored | archives (MB) | wall median (s) | runs (s) | x full alone | CPU (s) | CPU x | "
             "peak RSS (MiB) | same tree | load |", "|---" * 10 + "|"]
    for label, entry in restore["restores"].items():
        walls = ", ".join(f"{run['wall']:.2f}" for run in entry["runs"])
        ratios = [f"{entry[key]:.2f}" if key in entry else "-" for key in ("wall_ratio", "cpu_ratio")]
        same = "yes" if entry["identical"] else f"NO: {entry['difference']}"
        lines.append(f"| {label} | {entry['archive_bytes'] / 1e6:.1f} | {entry['wall_median']:.2f} | {walls} "
                     f"| {ratios[0]} | {entry['cpu_median']:.2f} | {ratios[1]} | {entry['peak_rss_max'] / MiB:.1f} "
                     f"| {same} | {_loads(entry['runs'])} |")
    lines += [f"\n{label}: not measured: {reason}" for label, reason in restore["skipped"].items()]
    return "\n".join(lines)


def rss_table(rss: dict) -> str:
    lines = [f"### memory: {rss['tree']['files']} files",
             "| run | kind | wall (s) | peak RSS (MiB) | load |", "|---|---|---|---|---|"]
    for name in ("full", "differential"):
        entry = rss[name]
        lines.append(f"| {name} | {entry['kind']} | {entry['wall']:.2f} | {entry['peak_rss'] / MiB:.1f} "
                     f"| {entry['load']:.2f} |")
    return "\n".join(lines)


def goals(results: dict) -> list[dict]:
    """Each goal of the issue: figure, limit, met / missed / not measured."""
    found = []
    week, restore, rss = results.get("week"), results.get("restore", {}), results.get("rss")
    for name in DIFFERENTIALS:
        days = _measured(week).get(name) if week else None
        reference, origin = restic_bytes(week) if week else (None, "")
        found.append((f"{name}: destination after the week <= {BYTES_GOAL}x restic ({origin})",
                      days[-1]["total_bytes"] / reference if days and reference else None, BYTES_GOAL))
        for figure in ("wall", "cpu"):
            ratios = time_ratios(week, name, figure) if week else []
            found.append((f"{name}: backup {figure} time <= {TIME_GOAL}x a full's (median of the differential "
                          "days)", statistics.median(ratios) if ratios else None, TIME_GOAL))
    for label in RESTORE_GOALS:
        entry = restore.get("restores", {}).get(label, {})
        for figure in ("wall", "cpu"):
            found.append((f"restore, {label} <= {RESTORE_GOAL}x the full alone ({figure} time)",
                          entry.get(f"{figure}_ratio"), RESTORE_GOAL))
    found.append((f"peak RSS of the differential with a {rss['tree']['files'] if rss else 200_000}-file full "
                   f"(MiB) <= {RSS_GOAL_MIB:.0f}", rss["differential"]["peak_rss"] / MiB if rss else None,
                   RSS_GOAL_MIB))
    return [{"goal": goal, "figure": figure, "limit": limit,
             "status": "not measured" if figure is None else ("met" if figure <= limit else "missed")}
            for goal, figure, limit in found]


def render(results: dict) -> str:
    parts = [f"## differential benchmark ({results['nproc']} cores, load {results['load_start'][0]:.2f} at start, "
             f"{results['load_end'][0]:.2f} at end; full_every.size {results['full_every_size']}; "
             f"restic {results['restic']}, borg {results['borg']}; backupd at {results['commit']})"]
    if "week" in results:
        parts += [week_table(results["week"]), time_table(results["week"])]
    if "restore" in results:
        parts.append(restore_table(results["restore"]))
    if "rss" in results:
        parts.append(rss_table(results["rss"]))
    parts.append("### goals\n" + "\n".join(f"- {g['goal']}: " + (f"{g['figure']:.2f} ({g['status']})"
                                                                  if g["figure"] is not None else g["status"])
                                           for g in results["goals"]))
    return "\n\n".join(parts) + "\n"
