"""A job's `keep` table, a gdrive destination's `trash` and `daemon.spool_max`: parsed, refused where they mean
nothing, and stated by --check-config."""
from __future__ import annotations

import subprocess
import sys

import pytest

from backupd.config import ConfigError, load
from backupd.config.keep import KeepPolicy
from tests.configs import job, write_config


def jobs(**keep) -> dict:
    return {"jobs": {"main": job(["files"], keep=keep)}}


def errors_of(tmp_path, **sections) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(write_config(tmp_path, **sections))
    return caught.value.errors


def test_keep_is_read_into_a_policy(tmp_path):
    config = load(write_config(tmp_path, **jobs(last=3, daily=7, weekly=4, monthly=12, yearly=2, within="36h")))
    assert config.jobs["main"].keep == KeepPolicy(last=3, daily=7, weekly=4, monthly=12, yearly=2, within=129600.0)
    assert load(write_config(tmp_path, name="bare.toml")).jobs["main"].keep == KeepPolicy()


def test_every_mistake_in_keep_is_named_at_its_own_key(tmp_path):
    assert errors_of(tmp_path, **jobs(last=0, dayly=7, weekly=True, within="7x")) == [
        "At 'jobs.main.keep.dayly': unknown key; did you mean 'daily'?",
        "At 'jobs.main.keep.last': must be a whole number of at least 1, not 0 (leave the rule out to not use "
        "it; the newest successful backup is always kept)",
        "At 'jobs.main.keep.weekly': must be a whole number of at least 1, not a boolean",
        "At 'jobs.main.keep.within': must be a duration like '90s', '30m', '6h' or '1d', not '7x'"]
    assert errors_of(tmp_path, jobs={"main": job(["files"], keep=7)}) == ["At 'jobs.main.keep': must be a table"]


def test_trash_and_spool_max(tmp_path):
    drive = {"type": "gdrive", "credentials": "sa.json"}
    config = load(write_config(tmp_path, daemon={"spool_max": "2GiB"}, destinations={
        "local": {**drive, "trash": True}}))
    assert config.daemon.spool_max == 2 << 30 and config.destinations["local"].trash
    assert load(write_config(tmp_path, name="defaults.toml")).daemon.spool_max is None
    assert errors_of(tmp_path, daemon={"spool_max": 0}) == [
        "At 'daemon.spool_max': must be a positive size like '10GiB', not 0"]
    assert errors_of(tmp_path, destinations={"local": {**drive, "trash": "yes"}}) == [
        "At 'destinations.local.trash': must be true or false, not a string"]


def test_check_config_states_each_jobs_policy(tmp_path):
    path = write_config(tmp_path, jobs={"main": job(["files"], keep={"daily": 7, "weekly": 4, "monthly": 12}),
                                        "other": job(["files"])})
    shown = subprocess.run([sys.executable, "-m", "backupd.cli.daemon_main", "--check-config", "--config", str(path)],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1:] == ["  job main: keep 7 daily, 4 weekly, 12 monthly",
                                             "  job other: keep everything (no keep policy)"]
