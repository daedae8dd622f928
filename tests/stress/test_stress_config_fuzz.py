"""Config fuzz: 1,500 seeded mutations of a valid configuration through the loader: each is either a success the
daemon can run (its schedules fire, its sources and destinations build) or a ConfigError of short lines, each
naming the key or the place in the file, never another exception. Then 30 broken ones through a real daemon's
`reload`: each refused with its errors, and the running schedule (next_run in status) never changes."""
from __future__ import annotations

import collections
import random
from datetime import datetime, timezone

import pytest

from backupd.config import ConfigError, cron, load
from backupd.daemon import protocol as proto
from backupd.destinations import registry as destinations
from backupd.sources import registry as sources
from tests.configs import CONFIG_NAME, toml_text
from tests.stress import probes
from tests.stress.config_mutations import base_config, mutate

SEED = 1409
MUTATIONS = 1500
RELOADS = 30
MAX_LINE = 400


def runnable(config) -> None:
    """What the daemon relies on at start and at a run: every schedule fires, every part can be built."""
    now = datetime.now(timezone.utc)
    for job in config.jobs.values():
        for schedule in filter(None, (job.schedule, job.verify_schedule)):
            assert cron.trigger(schedule, job.timezone).get_next_fire_time(None, now) is not None
    for source in config.sources.values():
        sources.build(source)
    for destination in config.destinations.values():
        destinations.build(destination, config.daemon.state_dir).close()


def error_problems(exc: ConfigError) -> list[str]:
    """What is wrong with a ConfigError as an operator reads it (empty: every line short, one line, placed)."""
    problems = []
    if not exc.errors:
        problems.append("no error lines")
    for line in exc.errors:
        placed = line.startswith(("At '", "not valid TOML", "cannot read the file"))
        if "\n" in line or len(line) > MAX_LINE or "Traceback" in line or not placed:
            problems.append(line[:200])
    return problems


@pytest.fixture
def base(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text("def make():\n    return object()\n")
    (tmp_path / "sa.json").write_text("{}")
    return base_config(tmp_path)


def test_1500_mutations_through_the_loader_give_a_runnable_config_or_clean_errors(tmp_path, base, figures):
    rng = random.Random(SEED)
    path = tmp_path / CONFIG_NAME
    outcomes: collections.Counter = collections.Counter()
    failures: list[str] = []
    for _ in range(MUTATIONS):
        mutation = mutate(base, rng)
        path.write_bytes(mutation.text)
        try:
            runnable(load(path))
            outcomes["accepted"] += 1
        except ConfigError as exc:
            outcomes["refused"] += 1
            failures += [f"{mutation.what}: {problem}" for problem in error_problems(exc)]
        except Exception as exc:   # noqa: BLE001 - the defect this test is for
            outcomes[f"crashed {type(exc).__name__}"] += 1
            failures.append(f"{mutation.what}: {type(exc).__name__}: {str(exc)[:160]}")
    figures(mutations=MUTATIONS, seed=SEED, **outcomes, defects=len(failures))
    assert failures == [], f"{len(failures)} bad outcomes, the first:\n" + "\n".join(failures[:15])


def schedule_of(daemon) -> list[tuple]:
    return [(job["name"], job["schedule"], job["next_run"]) for job in probes.call(daemon.socket, "status")["jobs"]]


def test_a_broken_reload_never_changes_the_running_schedule(tmp_path, base, daemons, figures):
    del base["sources"]["db"], base["sources"]["app"], base["destinations"]["drive"]   # a daemon that can start
    base["jobs"]["main"].update(sources=["files", "cmd"], destinations=["local"])
    path = tmp_path / CONFIG_NAME
    path.write_text(toml_text(base))
    daemon = daemons(path)
    before = schedule_of(daemon)
    rng, refused, seen = random.Random(SEED + 1), 0, set()
    while refused < RELOADS:
        mutation = mutate(base, rng)
        path.write_bytes(mutation.text)
        try:
            load(path)
        except ConfigError:
            pass
        else:
            continue                      # a valid mutation: not what this test reloads
        with pytest.raises(proto.RemoteError) as caught:
            proto.call(daemon.socket, "reload", timeout=30)
        assert caught.value.code != "internal", (mutation.what, caught.value.message)
        assert caught.value.details.get("errors"), (mutation.what, caught.value.message)
        assert schedule_of(daemon) == before, mutation.what
        refused += 1
        seen.add(mutation.what.split(" ")[0])
    path.write_text(toml_text(base))
    assert proto.call(daemon.socket, "reload", timeout=30)["summary"]
    assert schedule_of(daemon) == before and daemon.proc.poll() is None
    assert probes.non_json_lines(daemon.log_path) == []
    figures(broken_reloads=refused, schedule_unchanged=True, kinds=len(seen))


@pytest.mark.parametrize("text,message", [
    (b'[daemon]\nstate_dir = "/srv/\xff"\n', "not valid TOML: the file is not UTF-8 (byte 0xff at line 2)"),
    (b"[x]\ny = " + b"[" * 5000 + b"]" * 5000 + b"\n", "not valid TOML: arrays or tables nested too deeply"),
])
def test_a_file_the_toml_parser_cannot_take_is_one_clean_line(tmp_path, text, message):
    path = tmp_path / CONFIG_NAME
    path.write_bytes(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.errors == [message]
