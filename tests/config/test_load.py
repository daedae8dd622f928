"""Configuration validation: every mistake reported at once, each naming the file and the key."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backupd.config import ConfigError, load
from backupd.config.fields import crontab

GOOD = """
[daemon]
state_dir = "state"
socket = "ctl.sock"

[jobs.daily]
schedule = "30 2 * * 1-5"
sources = ["etc"]
destinations = ["local"]

[sources.etc]
type = "directory"
path = "/etc"

[destinations.local]
type = "local"
path = "archives"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "backupd.toml"
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text))
    return caught.value.errors


def test_good_config_is_typed_and_paths_are_relative_to_the_file(tmp_path):
    config = load(write(tmp_path, GOOD))
    job = config.jobs["daily"]
    assert job.schedule == "30 2 * * mon,tue,wed,thu,fri"
    assert job.misfire_grace == 6 * 3600 and job.catch_up is True and job.timezone == "UTC"
    assert config.daemon.state_dir == tmp_path / "state"
    assert config.destinations["local"].path == tmp_path / "archives"
    assert config.sources["etc"].exclude == ()


BAD = [
    ('[daemon]\nlog_levl = "info"', "At 'daemon.log_levl': unknown key; did you mean 'log_level'?"),
    ('[daemon]\nstop_timeout = "5 parsecs"', "At 'daemon.stop_timeout': must be a duration"),
    ('[daemon]\nlog_format = "xml"', "At 'daemon.log_format': must be one of 'json', 'text'"),
    ('[jobs.daily]\nschedule = "0 25 * * *"\nsources=["etc"]\ndestinations=["local"]',
     "At 'jobs.daily.schedule': hour must be 0-23, not 25"),
    ('[jobs.daily]\nschedule = "0 3 * *"\nsources=["etc"]\ndestinations=["local"]',
     "At 'jobs.daily.schedule': must have 5 fields"),
    ('[jobs.daily]\nsources=["etcc"]\ndestinations=["local"]',
     "At 'jobs.daily.sources': names unknown source 'etcc'; did you mean 'etc'?"),
    ('[jobs.daily]\nsources=["etc"]', "At 'jobs.daily.destinations': is required"),
    ('[jobs.daily]\nsources=["etc"]\ndestinations=["local"]\ncompression_level = 40',
     "At 'jobs.daily.compression_level': must be 1-22, not 40"),
    ('[jobs.daily]\nsources=["etc"]\ndestinations=["local"]\ntimezone = "Mars/Olympus"',
     "At 'jobs.daily.timezone': unknown time zone 'Mars/Olympus'"),
    ('[jobs.daily]\nsources=["etc"]\ndestinations=["local"]\ncatch_up = "yes"',
     "At 'jobs.daily.catch_up': must be true or false, not a string"),
    ('[sources.db]\ntype = "sqlite3"\npath = "/x.db"', "At 'sources.db.type': unknown type 'sqlite3'; did you mean 'sqlite'?"),
    ('[sources.dump]\ntype = "command"\ncommand = "pg_dump app"\noutput = "a.dump"',
     "At 'sources.dump.command': must be a list of strings, not a string"),
    ('[sources.dump]\ntype = "command"\ncommand = ["pg_dump"]\noutput = "../a.dump"',
     "At 'sources.dump.output': must be a plain file name"),
    ('[destinations.drive]\ntype = "gdrive"\ncredentials = "g.json"\nchunk_size = "1000KiB"',
     "At 'destinations.drive.chunk_size': must be a positive multiple of 256KiB"),
    ('[destinations.drive]\ntype = "gdrive"', "At 'destinations.drive.credentials': is required"),
    ('[backups]\nx = 1', "At 'backups': unknown key"),
    ('[sources."MANIFEST.json"]\ntype = "directory"\npath = "/srv"', "is the archive's manifest; choose another"),
]


@pytest.mark.parametrize("snippet, expected", BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_each_mistake_has_its_message(tmp_path, snippet, expected):
    if snippet.startswith("[daemon]\n"):
        text = GOOD.replace("[daemon]\n", snippet + "\n", 1)
    elif snippet.startswith("[jobs.daily]\n"):
        text = GOOD.replace('[jobs.daily]\nschedule = "30 2 * * 1-5"\nsources = ["etc"]\n'
                            'destinations = ["local"]\n', "") + "\n" + snippet
    else:
        text = GOOD + "\n" + snippet
    errors = errors_of(tmp_path, text)
    assert any(expected in error for error in errors), errors


def test_all_errors_are_reported_at_once(tmp_path):
    errors = errors_of(tmp_path, GOOD.replace('path = "/etc"', 'path = 5').replace(
        '"30 2 * * 1-5"', '"61 * * * *"') + '\n[daemon2]\n')
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
    good = run_check("--config", str(write(tmp_path, GOOD)))
    assert good.returncode == 0 and "ok: 1 job(s)" in good.stdout
    bad = run_check("--config", str(write(tmp_path, GOOD.replace('"local"]', '"lokal"]'))))
    assert bad.returncode == 1
    assert "At 'jobs.daily.destinations': names unknown destination 'lokal'; did you mean 'local'?" in bad.stderr


def test_shipped_example_is_valid():
    root = Path(__file__).resolve().parents[2]
    for name in ("backupd.toml", "dev.toml"):
        assert run_check("--config", str(root / "etc" / name)).returncode == 0
