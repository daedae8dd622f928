"""What e2e tests read of what a daemon tells its watchers: the metrics file, hook environments, and a job
"main" (tmp_path/data to the local destination tmp_path/archives) to watch."""
from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.configs import directory_source, job, local_destination, write_config
from tests.waiting import wait_for

ENV_DUMP = ["sh", "-c", 'env | grep ^BACKUPD_ | sort > "$0"']
ENV_APPEND = ["sh", "-c", 'env | grep ^BACKUPD_ | sort >> "$0"; echo --- >> "$0"']    # one block per call


def config(tmp_path: Path, jobs: dict | None = None, daemon: dict | None = None, **job_keys) -> Path:
    """Job "main" backs up tmp_path/data to tmp_path/archives; the metrics file is tmp_path/metrics/backupd.prom."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "file.txt").write_text("payload\n" * 100)
    (tmp_path / "metrics").mkdir(exist_ok=True)
    return write_config(tmp_path, daemon={"metrics_file": tmp_path / "metrics" / "backupd.prom", **(daemon or {})},
                        jobs=jobs or {"main": job(["files"], **job_keys)},
                        sources={"files": directory_source(tmp_path / "data")},
                        destinations={"local": local_destination(tmp_path / "archives")})


def metric(tmp_path: Path, name: str, **labels) -> float | None:
    path = tmp_path / "metrics" / "backupd.prom"
    if not path.exists():
        return None
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def wait_metric(tmp_path: Path, value: float, name: str, **labels) -> None:
    wait_for(lambda: metric(tmp_path, name, **labels) == value, what=f"{name}{labels} == {value} in the file")


def break_destination(tmp_path: Path) -> None:
    """The local destination's folder becomes a file: stores fail, the archive waits in the spool."""
    (tmp_path / "archives").mkdir(exist_ok=True)
    (tmp_path / "archives").rename(tmp_path / "archives.old")
    (tmp_path / "archives").write_text("not a folder")


def dumped(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def appended(path: Path) -> list[dict]:
    """Each environment ENV_APPEND wrote to `path`, in order (none if it never ran)."""
    if not path.exists():
        return []
    blocks = path.read_text().split("---\n")[:-1]
    return [dict(line.split("=", 1) for line in block.splitlines()) for block in blocks]
