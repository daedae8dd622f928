"""backupctl's human output: tables, sizes, times (stdlib only: backupctl must start fast)."""
from __future__ import annotations

import re

from backupd.util.units import human_age, human_size

FULL, DIFFERENTIAL = "full", "differential"     # a backup's kind (as backupd.util.names, not imported: start-up)

# C0 and C1 controls, DEL, bidirectional overrides and isolates, lone surrogates: what a terminal acts on or
# cannot print; shown escaped as repr() would ('\x1b'), so a daemon's text cannot drive the terminal
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(value):
    """`value` (a decoded JSON reply or part of one) with every string's unprintable characters escaped."""
    if isinstance(value, str):
        return _UNPRINTABLE.sub(lambda found: repr(found.group())[1:-1], value)
    if isinstance(value, list):
        return [printable(item) for item in value]
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    return value


# -- formatting --------------------------------------------------------------------------------------------------
def _parse_time(text):
    from datetime import datetime
    return datetime.fromisoformat(text)


def local_time(text) -> str:
    """An ISO timestamp from the daemon shown in the local time zone."""
    if not text:
        return "-"
    try:
        return _parse_time(text).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(text)


def human_duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"


def run_duration(run: dict) -> str:
    started, ended = run.get("started"), run.get("ended")
    return human_duration((_parse_time(ended) - _parse_time(started)).total_seconds()) if started and ended else "-"


def table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned columns separated by two spaces; trailing blanks trimmed."""
    cells = [headers] + [["-" if v is None or v == "" else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def progress_text(event: dict) -> str:
    done, total, percent = event.get("bytes_done"), event.get("bytes_total"), event.get("percent")
    amount = human_size(done or 0) + (f" of {human_size(total)}" if total else "")
    share = f" ({percent:.0f}%)" if isinstance(percent, (int, float)) else ""
    return f"{event.get('job') or 'run'} {event.get('run_id', '')}: {event.get('stage', '?')} {amount}{share}"


def run_outcome(run: dict) -> str:
    text = run.get("status", "?")
    if run.get("error"):
        text += f" ({run['error'].get('category', '?')}: {run['error'].get('message', '')})"
    elif run.get("warnings"):
        text += f" ({run['warnings']} warnings)"
    return text


def archive_size(run: dict) -> str:
    return human_size((run.get("archive") or {}).get("size"))


def set_text(archive: dict) -> str:
    """A differential's full and its set's size so far ('' for a full)."""
    if archive.get("kind") != DIFFERENTIAL:
        return ""
    full = archive.get("base") or f"the full of run {archive.get('base_run_id') or archive.get('base_run') or '?'}"
    size = f", set {human_size(archive['set_size'])} so far" if archive.get("set_size") else ""
    return f"differential of {full}{size}"


def kind_lines(runs: list[dict], label) -> list[str]:
    """'LABEL: differential of FULL, set SIZE so far' for each run whose archive is a differential."""
    return [f"{label(run)}: {set_text(run['archive'])}" for run in runs if set_text(run.get("archive") or {})]


def destinations_summary(run: dict) -> str:
    return ", ".join(f"{d.get('name')} {d.get('status')}" for d in run.get("destinations") or []) or "-"


# -- commands: each turns a result into text ---------------------------------------------------------------------
def show_status(result: dict) -> str:
    head = (f"backupd {result.get('version')}  pid {result.get('pid')}  up {human_duration(result.get('uptime_s'))}"
            f"  config {result.get('config')}\n{result.get('status_text', '')}\n")
    rows, notes = [], []
    for job in result.get("jobs", []):
        name, last = job.get("name"), job.get("last_run") or {}
        rows.append([name, f"{job.get('schedule')} {job.get('timezone')}", local_time(job.get("next_run")),
                     local_time(last.get("started")), last.get("status"), archive_size(last)])
        if job.get("running"):
            notes.append("running: " + progress_text({"job": name, **job["running"]}))
        notes += [f"{name}: last backup on {d.get('name')}: {d['link']} (file id {d.get('file_id')})"
                  for d in last.get("destinations") or [] if d.get("link")]
        notes += success_lines(job) + last_kind_lines(job)
        if job.get("pending_uploads"):
            notes.append(f"{name}: {job['pending_uploads']} upload(s) pending; retry now with: "
                         f"backupctl trigger {name} --upload-pending")
    body = table(["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN", "RESULT", "SIZE"], rows)
    return "\n".join([head + body] + notes + spool_lines(result.get("spool")))


def success_lines(job: dict) -> list[str]:
    """The time since the job's last success, with a warning when it is past the job's alert_after."""
    if "last_success_age_s" not in job:
        return []
    age, after = job.get("last_success_age_s"), job.get("alert_after")
    text = "never succeeded" if age is None else f"last success {human_age(age)} ago"
    if job.get("overdue"):
        return [f"WARNING {job.get('name')}: {text}, past its alert_after of {human_age(after)}"]
    return [f"{job.get('name')}: {text}"]


def last_kind_lines(job: dict) -> list[str]:
    """A differential job's last backup: a full, or a differential of which full (and the set's size)."""
    archive = (job.get("last_run") or {}).get("archive") or {}
    if not archive or not (job.get("differential") or archive.get("kind") == DIFFERENTIAL):
        return []
    text = set_text(archive)
    return [f"{job.get('name')}: last backup " + (f"a {text}" if text else "a full (a new set)")]


def show_check(result: dict) -> str:
    return "\n".join(str(job.get("line")) for job in result.get("jobs", [])) or "no job to check"


def spool_lines(spool: dict | None) -> list[str]:
    """The spool's size and bound, and each archive waiting in it with why."""
    if not spool:
        return []
    lines = [f"spool: {human_size(spool.get('bytes'))} awaiting upload (spool_max {human_size(spool.get('max'))})"]
    for archive in spool.get("archives") or []:
        lines.append(f"  {archive.get('archive')}  {human_size(archive.get('size'))}  job {archive.get('job')}")
        lines += [f"    -> {d.get('destination')}: {d.get('why')}" for d in archive.get("destinations") or []]
    return lines


def show_run(run: dict) -> str:
    archive = run.get("archive") or {}
    lines = [f"run {run.get('run_id')}  job {run.get('job')}  {run.get('trigger')}  {run_outcome(run)}"
             f"  in {run_duration(run)}"]
    if archive:
        lines.append(f"archive {archive.get('name')}  {archive.get('kind') or FULL}  {archive_size(run)}  "
                     f"sha256 {archive.get('sha256')}")
        lines += [f"  {text.removeprefix(DIFFERENTIAL).lstrip()}" for text in [set_text(archive)] if text]
    rows = [[d.get("name"), d.get("status"), d.get("link") or d.get("location"), d.get("error")]
            for d in run.get("destinations") or []]
    if rows:
        lines.append(table(["DESTINATION", "STATUS", "LOCATION", "ERROR"], rows))
    return "\n".join(lines)


def show_trigger(result: dict) -> str:
    if "status" in result:
        return show_run(result)
    if result.get("started"):
        full = " (a new full)" if result.get("full") else ""
        return f"started run {result.get('run_id')} of job {result.get('job')}{full}"
    note = f"; {result['note']}" if result.get("note") else ""
    return f"job {result.get('job')} is already running: run {result.get('run_id')}{note}"


def show_history(result: dict) -> str:
    rows = [[r.get("run_id"), r.get("job"), r.get("trigger"), local_time(r.get("started")), run_duration(r),
             archive_size(r), destinations_summary(r), run_outcome(r)]
            for r in result.get("runs", [])]
    if not rows:
        return "no runs recorded"
    links = [f"{r.get('run_id')} {d.get('name')}: {d['link']} (file id {d.get('file_id')})"
             for r in result.get("runs", []) for d in r.get("destinations") or [] if d.get("link")]
    kinds = kind_lines(result.get("runs", []), lambda run: run.get("run_id"))
    return "\n".join([table(["RUN", "JOB", "TRIGGER", "STARTED", "TOOK", "SIZE", "DESTINATIONS", "RESULT"], rows),
                      *kinds, *links])


def show_list(result: dict) -> str:
    rows = [[b.get("destination"), b.get("name"), human_size(b.get("size")), local_time(b.get("created")),
             b.get("job")] for b in result.get("backups", [])]
    lines = [table(["DESTINATION", "NAME", "SIZE", "CREATED", "JOB"], rows) if rows else "no backups found"]
    lines += set_lines(result.get("backups", []))
    lines += [f"warning: {error}" for error in result.get("errors", [])]
    return "\n".join(lines)


def set_lines(backups: list[dict]) -> list[str]:
    """Each set with differentials: its full, how many, the bytes of all; a differential whose full is missing."""
    sets: dict[tuple, list[dict]] = {}
    orphans = []
    for backup in backups:
        if backup.get("kind") == DIFFERENTIAL:
            if backup.get("base"):
                sets.setdefault((backup.get("destination"), backup["base"]), []).append(backup)
            else:
                orphans.append(f"warning: {backup.get('name')} at {backup.get('destination')}: its full (run "
                               f"{backup.get('base_run')}) is not there; it cannot be restored without it")
    lines = [f"set {full} at {where}: full + {len(diffs)} differential{'s' if len(diffs) > 1 else ''}, "
             f"{human_size(max(diff.get('set_size') or 0 for diff in diffs))} in all"
             for (where, full), diffs in sets.items()]
    return lines + orphans


def show_prune(result: dict) -> str:
    """Per job and destination: the plan (every backup, what keeps it or that it goes), what was removed."""
    dry = result.get("dry_run")
    blocks = []
    for plan in result.get("plans", []):
        backups = plan.get("backups") or []
        kept = sum(1 for backup in backups if backup.get("kept"))
        gone = len(plan.get("removed") or []) if not dry else len(backups) - kept
        outcome = f"{kept} kept, {gone} {'would be removed' if dry else 'removed'}"
        lines = [f"job {plan.get('job')} at {plan.get('destination')} ({plan.get('policy')}): {outcome}",
                 *(plan.get("plan") or [])]
        if plan.get("error"):
            lines.append(f"error: {plan['error']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) or "no destination to prune"


SHOW = {"status": show_status, "trigger": show_trigger, "history": show_history, "list": show_list,
        "reload": lambda result: result.get("summary", "configuration reloaded"), "prune": show_prune,
        "check": show_check}
# command -> whether its (successful) reply still means the operation failed somewhere: exit 1
FAILED = {"prune": lambda result: any(plan.get("error") for plan in result.get("plans", [])),
          "check": lambda result: result.get("ok") is not True}
