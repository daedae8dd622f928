"""Configuration validation: every mistake reported at once, each naming the file and the key."""
import subprocess
import sys
from pathlib import Path

import pytest

from backupd.config import ConfigError, load
from backupd.config.fields import crontab
from tests.configs import command_source, directory_source, job, local_destination, write_config

DAILY = job(["etc"], schedule="30 2 * * 1-5")
GOOD = {"daemon": {"state_dir": "state", "socket": "ctl.sock"}, "jobs": {"daily": DAILY},
        "sources": {"etc": directory_source("/etc")}, "destinations": {"local": local_destination("archives")}}


def write(tmp_path: Path, **changes) -> Path:
    """GOOD with each table of `changes` added to its section (a given daemon key or named table replaces GOOD's)."""
    sections = {name: {**GOOD.get(name, {}), **changes.get(name, {})} for name in {**GOOD, **changes}}
    return write_config(tmp_path, **sections)


def errors_of(tmp_path: Path, **changes) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, **changes))
    return caught.value.errors


def test_good_config_is_typed_and_paths_are_relative_to_the_file(tmp_path):
    config = load(write(tmp_path))
    job = config.jobs["daily"]
    assert job.schedule == "30 2 * * mon,tue,wed,thu,fri"
    assert job.misfire_grace == 6 * 3600 and job.catch_up is True and job.timezone == "UTC"
    assert config.daemon.state_dir == tmp_path / "state"
    assert config.destinations["local"].path == tmp_path / "archives"
    assert config.sources["etc"].exclude == ()


BAD = [
    ({"daemon": {"log_levl": "info"}}, "At 'daemon.log_levl': unknown key; did you mean 'log_level'?"),
    ({"daemon": {"stop_timeout": "5 parsecs"}}, "At 'daemon.stop_timeout': must be a duration"),
    ({"daemon": {"log_format": "xml"}}, "At 'daemon.log_format': must be one of 'json', 'text'"),
    ({"jobs": {"daily": job(["etc"], schedule="0 25 * * *")}}, "At 'jobs.daily.schedule': hour must be 0-23, not 25"),
    ({"jobs": {"daily": job(["etc"], schedule="0 3 * *")}}, "At 'jobs.daily.schedule': must have 5 fields"),
    ({"jobs": {"daily": job(["etcc"])}}, "At 'jobs.daily.sources': names unknown source 'etcc'; did you mean 'etc'?"),
    ({"jobs": {"daily": {"sources": ["etc"]}}}, "At 'jobs.daily.destinations': is required"),
    ({"jobs": {"daily": job(["etc"], compression_level=40)}},
     "At 'jobs.daily.compression_level': must be 1-22, not 40"),
    ({"jobs": {"daily": job(["etc"], timezone="Mars/Olympus")}},
     "At 'jobs.daily.timezone': unknown time zone 'Mars/Olympus'"),
    ({"jobs": {"daily": job(["etc"], catch_up="yes")}},
     "At 'jobs.daily.catch_up': must be true or false, not a string"),
    ({"sources": {"db": {"type": "sqlite3", "path": "/x.db"}}},
     "At 'sources.db.type': unknown type 'sqlite3'; did you mean 'sqlite'?"),
    ({"sources": {"dump": {**command_source([], "a.dump"), "command": "pg_dump app"}}},
     "At 'sources.dump.command': must be a list of strings, not a string"),
    ({"sources": {"dump": command_source(["pg_dump"], "../a.dump")}},
     "At 'sources.dump.output': must be a plain file name"),
    ({"destinations": {"drive": {"type": "gdrive", "credentials": "g.json", "chunk_size": "1000KiB"}}},
     "At 'destinations.drive.chunk_size': must be a positive multiple of 256KiB"),
    ({"destinations": {"drive": {"type": "gdrive"}}}, "At 'destinations.drive.credentials': is required"),
    ({"backups": {"x": 1}}, "At 'backups': unknown key"),
    ({"sources": {"MANIFEST.json": directory_source("/srv")}}, "is the archive's manifest; choose another"),
]


@pytest.mark.parametrize("changes, expected", BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_each_mistake_has_its_message(tmp_path, changes, expected):
    errors = errors_of(tmp_path, **changes)
    assert any(expected in error for error in errors), errors


def test_all_errors_are_reported_at_once(tmp_path):
    errors = errors_of(tmp_path, sources={"etc": directory_source(5)},
                       jobs={"daily": {**DAILY, "schedule": "61 * * * *"}}, daemon2={})
    assert len(errors) == 3, errors
    assert all(error.startswith("At '") for error in errors)


def test_unreadable_and_invalid_toml_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        path = tmp_path / "bad.toml"
        path.write_text("[jobs\n")
        load(path)


@pytest.mark.parametrize("expression, normalised", [
    ("0 3 * * *", "0 3 * * *"),
    ("0 3 * * 0", "0 3 * * sun"),
    ("0 3 * * 7", "0 3 * * sun"),
    ("0 3 * * 5-7", "0 3 * * fri,sat,sun"),
    ("*/15 8-18 1,15 jan-jun */2", "*/15 8-18 1,15 jan-jun sun,tue,thu,sat"),
])
def test_crontab_weekdays_keep_crontab_meaning(expression, normalised):
    assert crontab(expression) == normalised


def run_check(*args):
    return subprocess.run([sys.executable, "-m", "backupd.cli.daemon_main", "--check-config", *args],
                          capture_output=True, text=True, timeout=60)


def test_check_config_exit_codes(tmp_path):
    good = run_check("--config", str(write(tmp_path)))
    assert good.returncode == 0 and "ok: 1 job(s)" in good.stdout
    bad = run_check("--config", str(write(tmp_path, jobs={"daily": {**DAILY, "destinations": ["lokal"]}})))
    assert bad.returncode == 1
    assert "At 'jobs.daily.destinations': names unknown destination 'lokal'; did you mean 'local'?" in bad.stderr


def test_shipped_example_is_valid():
    root = Path(__file__).resolve().parents[2]
    for name in ("backupd.toml", "dev.toml"):
        assert run_check("--config", str(root / "etc" / name)).returncode == 0
