"""verify_schedule: a job's verification schedule, off by default, read and checked like `schedule`."""
from __future__ import annotations

import pytest

from backupd.config import ConfigError, load
from tests.configs import job, write_config


def test_off_by_default_and_normalised_when_given(tmp_path):
    assert load(write_config(tmp_path)).jobs["main"].verify_schedule is None
    given = write_config(tmp_path, jobs={"main": job(["files"], verify_schedule="30 4 * * 0")})
    assert load(given).jobs["main"].verify_schedule == "30 4 * * sun"


@pytest.mark.parametrize("value, message", [
    ("61 4 * * *", "At 'jobs.main.verify_schedule': minute must be 0-59, not 61"),
    ("0 0 31 2 *", "At 'jobs.main.verify_schedule': '0 0 31 2 *' never fires"),
    (7, "At 'jobs.main.verify_schedule': must be a string"),
])
def test_a_bad_schedule_is_refused_naming_the_key(tmp_path, value, message):
    with pytest.raises(ConfigError) as caught:
        load(write_config(tmp_path, jobs={"main": job(["files"], verify_schedule=value)}))
    assert any(error.startswith(message) for error in caught.value.errors), caught.value.errors
