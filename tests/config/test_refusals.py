"""What --check-config refuses because the daemon could not run it: each a single short line naming the key."""
from __future__ import annotations

import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from backupd.config import ConfigError, JobConfig, load
from backupd.config.cron import schedule
from backupd.config.fields import FieldError
from backupd.daemon.scheduler import cron_trigger
from tests.configs import command_source, directory_source, job, write_config

GDRIVE = {"type": "gdrive", "credentials": "sa.json"}


def only_error(tmp_path: Path, **sections) -> str:
    """The one error `sections` (tests/configs.write_config arguments) cause."""
    with pytest.raises(ConfigError) as caught:
        load(write_config(tmp_path, **sections))
    errors = caught.value.errors
    assert len(errors) == 1, errors
    assert "\n" not in errors[0] and len(errors[0]) < 240, errors[0]
    return errors[0]


def schedules(expression: str) -> dict:
    return {"jobs": {"main": job(["files"], schedule=expression)}}


REFUSED = [
    (schedules("0 */25 * * *"), "At 'jobs.main.schedule': hour step 25 is larger than its range 0-23"),
    (schedules("*/100 * * * *"), "At 'jobs.main.schedule': minute step 100 is larger than its range 0-59"),
    (schedules("* * * * sat-sun"), "At 'jobs.main.schedule': day of week range 'sat-sun' runs backwards"),
    (schedules("30-10 * * * *"), "At 'jobs.main.schedule': minute range '30-10' runs backwards"),
    (schedules("0 0 31 2 *"), "At 'jobs.main.schedule': '0 0 31 2 *' never fires (no such date)"),
    (schedules("0 0 31 4,6,9,11 *"), "never fires"),
    ({"jobs": {"main": job(["files"], misfire_grace=float("inf"))}},
     "At 'jobs.main.misfire_grace': must be a finite duration, not inf"),
    ({"jobs": {"main": job(["files"], misfire_grace=float("nan"))}},
     "At 'jobs.main.misfire_grace': must be a finite duration, not nan"),
    ({"jobs": {"main": job(["files"], misfire_grace="500ms")}},   # APScheduler needs a whole second or more
     "At 'jobs.main.misfire_grace': must be at least 1s, not '500ms'"),
    ({"daemon": {"stop_timeout": float("inf")}}, "At 'daemon.stop_timeout': must be a finite duration, not inf"),
    ({"daemon": {"stop_timeout": 1e300}}, "At 'daemon.stop_timeout': must be at most 3650d, not 1e+300"),
    ({"daemon": {"stop_timeout": "99999999d"}}, "At 'daemon.stop_timeout': must be at most 3650d"),
    ({"sources": {"files": command_source(["true"], timeout=float("-inf"))}},
     "At 'sources.files.timeout': must be a finite duration, not -inf"),
    ({"destinations": {"local": {**GDRIVE, "retry_deadline": float("nan")}}},
     "At 'destinations.local.retry_deadline': must be a finite duration, not nan"),
    ({"sources": {"files": directory_source("/srv/a\x00b")}}, "At 'sources.files.path': must not contain a NUL byte"),
    ({"sources": {"files": directory_source("/srv", exclude=["*.tmp", "x\x00"])}},
     "At 'sources.files.exclude': must not contain a NUL byte"),
    ({"sources": {"files": command_source(["pg_dump", "a\x00b"])}},
     "At 'sources.files.command': must not contain a NUL byte"),
    ({"daemon": {"control_group": "backupd\x00"}}, "At 'daemon.control_group': must not contain a NUL byte"),
    ({"destinations": {"local": {**GDRIVE, "folder": "a\x00"}}},
     "At 'destinations.local.folder': must not contain a NUL byte"),
    ({"sources": {"files": {"type": ["directory"], "path": "/srv"}}},
     "At 'sources.files.type': must be a string, not a list; known types: directory, sqlite, command"),
    ({"destinations": {"local": {"type": {"local": True}}}},
     "At 'destinations.local.type': must be a string, not a table; known types: local, gdrive"),
    ({"jobs": {"main": job(["files", "files"])}}, "At 'jobs.main.sources': names source 'files' more than once"),
    ({"jobs": {"main": job(["files"], ["local", "local"])}},
     "At 'jobs.main.destinations': names destination 'local' more than once"),
]


@pytest.mark.parametrize("sections, expected", REFUSED, ids=[r[1] for r in REFUSED])
def test_refused_with_one_line_naming_the_key(tmp_path, sections, expected):
    assert expected in only_error(tmp_path, **sections)


def test_socket_path_longer_than_a_unix_address_holds(tmp_path):
    def socket_of(length: int) -> Path:
        prefix = f"{tmp_path}/"
        return Path(prefix + "s" * (length - len(prefix)))
    load(write_config(tmp_path, daemon={"socket": socket_of(107)}))    # sun_path: 108 bytes with the NUL
    error = only_error(tmp_path, daemon={"socket": socket_of(108)})
    assert error.startswith("At 'daemon.socket': is 108 bytes long; a Unix socket path holds at most 107")


def test_socket_path_that_is_a_directory_or_another_file(tmp_path):
    (tmp_path / "run").mkdir()
    assert only_error(tmp_path, daemon={"socket": tmp_path / "run"}).startswith(
        f"At 'daemon.socket': {str(tmp_path / 'run')!r} is a directory; name the socket file inside it")
    (tmp_path / "notes.txt").write_text("not a socket")
    assert only_error(tmp_path, daemon={"socket": tmp_path / "notes.txt"}).startswith(
        f"At 'daemon.socket': {str(tmp_path / 'notes.txt')!r} exists and is not a socket")
    assert (tmp_path / "notes.txt").read_text() == "not a socket"


@pytest.mark.parametrize("key, below", [("state_dir", "lib/state"), ("state_dir", ""), ("socket", "ctl.sock")])
def test_paths_under_a_regular_file(tmp_path, key, below):
    (tmp_path / "file").write_text("")
    error = only_error(tmp_path, daemon={key: tmp_path / "file" / below})
    assert error == f"At 'daemon.{key}': {str(tmp_path / 'file')!r} is not a directory"


def test_long_values_are_cut_in_messages(tmp_path):
    huge = "x" * 100_000
    for sections in ({"daemon": {"log_level": huge}}, {"daemon": {huge: 1}}, schedules(huge + " * * * *"),
                     {"sources": {"files": {"type": huge}}}, {"sources": {huge: directory_source("/srv")}},
                     {"jobs": {"main": job([huge])}}):
        error = only_error(tmp_path, **sections)
        assert "xxx..." in error and len(error) < 240, error[:300]


def test_names_with_control_characters_stay_on_one_line(tmp_path):
    error = only_error(tmp_path, daemon={"log\nlevel": "info"})
    assert error == "At 'daemon.log\\nlevel': unknown key; did you mean 'log_level'?"


def test_every_schedule_the_checker_accepts_the_scheduler_runs():
    """Random crontab expressions: refused with a FieldError, or the daemon's trigger has a next run."""
    pieces = ["*"] * 12 + ["*/2", "*/7", "*/13", "0", "1", "5", "1-5", "5-1", "1-5/2", "3/4", "mon", "sun-sat",
                           "fri-mon", "jan", "dec-feb", "29", "30", "31", "7", "0,6", "1,15", "2-2/1", "24", "*/24",
                           "*/60", "59-59", "2-12/5"]
    rng = random.Random(9)
    accepted, now = 0, datetime.now(timezone.utc)
    for _ in range(1500):
        expression = " ".join(rng.choice(pieces) for _ in range(5))
        try:
            normalised = schedule(expression)
        except FieldError:
            continue
        trigger = cron_trigger(JobConfig(name="j", schedule=normalised, sources=("a",), destinations=("b",)))
        assert trigger.get_next_fire_time(None, now) is not None, expression
        accepted += 1
    assert accepted > 150
