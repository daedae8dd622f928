"""Drive upload to the loopback Drive server: backupd's DriveDestination against `curl -T` to the same server.

The server (tests/fakes, run in this process) keeps what it receives in memory; each upload is removed from
it afterwards. The destination runs in a fresh child so its peak RSS is its own.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

from . import daemon_cmd
from .baselines import REPO_ROOT
from .measure import BenchError, Invocation, MiB, run_once

BLOCK = 4 * MiB


def missing() -> str | None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    for module in ("tests.fakes.drive", "tests.fakes.drive_handler", "backupd.destinations.gdrive.destination"):
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not there yet"
        except ImportError as exc:
            return f"{module} cannot be imported: {exc}"
    return None if shutil.which("curl") else "`curl` is not installed"


def upload_file(data_dir: Path, size: int) -> Path:
    """A file of `size` incompressible bytes (an archive is), written once and reused."""
    path = data_dir / f"drive-upload-{size // MiB}MiB.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    seed = hashlib.sha256(b"bench-drive").digest()
    with open(partial, "wb") as out:
        for index in range(size // BLOCK):
            out.write(hashlib.shake_256(seed + index.to_bytes(8, "big")).digest(BLOCK))
    partial.rename(path)
    return path


def _settings(drive, work: Path, file: Path, chunk_size: int) -> Path:
    credentials = drive.write_credentials(work / "sa.json", drive.oauth.service_account())
    options = {"credentials": str(credentials), "endpoint": drive.url, "chunk_size": chunk_size}  # rest: defaults
    sha = hashlib.sha256()
    with open(file, "rb") as handle:
        while block := handle.read(BLOCK):
            sha.update(block)
    now = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    meta = {"name": f"bench-host-{now}-0000.tar.zst", "job": "bench", "run_id": "0" * 32, "host": "host",
            "size": file.stat().st_size, "sha256": sha.hexdigest(),
            "created": datetime.now(timezone.utc).isoformat()}
    path = work / "drive-settings.json"
    path.write_text(json.dumps({"options": options, "state_dir": str(work / "state"),
                                "file": str(file), "meta": meta}))
    return path


def _forget_uploads(drive) -> None:
    """Drop stored files and sessions so the server's memory does not grow from run to run."""
    with drive.state.lock:
        for key in [k for k, f in drive.state.files.items() if f.mimeType != "application/vnd.google-apps.folder"]:
            del drive.state.files[key]
        drive.state.sessions.clear()


def bench_drive(work: Path, data_dir: Path, size: int, repeat: int, chunk_size: int = 8 * MiB) -> dict:
    """Throughput and memory of DriveDestination.store against curl -T, medians of `repeat` runs each."""
    from tests.fakes.drive import DriveServer
    file = upload_file(data_dir, size)
    work.mkdir(parents=True, exist_ok=True)
    ours, curl = [], []
    with DriveServer() as drive:
        settings = _settings(drive, work, file, chunk_size)
        for index in range(repeat):
            ours.append(_ours(settings, work, index))
            _forget_uploads(drive)
            curl.append(_curl(drive, file, work, index))
            _forget_uploads(drive)
    store_s = statistics.median(r["store_s"] for r in ours)
    curl_s = statistics.median(c["wall"] for c in curl)
    return {"runs": repeat, "bytes": size, "chunk_size": chunk_size,
            "backupd_store_s": store_s, "backupd_wall_s": statistics.median(r["wall"] for r in ours),
            "backupd_mib_s": size / MiB / store_s, "curl_s": curl_s, "curl_mib_s": size / MiB / curl_s,
            "throughput_ratio": curl_s / store_s,
            "rss_before_upload": int(statistics.median(r["rss_before"] for r in ours)),
            "peak_rss": int(statistics.median(r["peak_rss"] for r in ours)),
            "upload_memory": int(statistics.median(r["hwm"] - r["rss_before"] for r in ours)),
            "curl_peak_rss": int(statistics.median(c["peak_rss"] for c in curl))}


def _ours(settings: Path, work: Path, index: int) -> dict:
    report = work / f"drive-{index}.out"
    invocation = Invocation([sys.executable, "-m", "bench.drive_child", str(settings)], cwd=REPO_ROOT,
                            output=settings, env=daemon_cmd.ENV)
    sample = run_once(invocation, report)
    lines = [line for line in report.read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"bench.drive_child printed no result; see {report}")
    return {**json.loads(lines[-1]), "wall": sample.wall, "peak_rss": sample.peak_rss}


def _curl(drive, file: Path, work: Path, index: int) -> dict:
    url = drive.new_session({"name": f"curl-{index}.bin", "parents": ["root"]}, file.stat().st_size)
    argv = ["curl", "--silent", "--show-error", "--fail", "-o", "/dev/null", "-T", str(file), url]
    sample = run_once(Invocation(argv, cwd=work, output=file), work / f"curl-{index}.log")
    return {"wall": sample.wall, "peak_rss": sample.peak_rss}
