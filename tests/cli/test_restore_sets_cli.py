"""backupctl restore and verify of a differential as processes, without a daemon: --config, --archive with
--base (encrypted sets too), the usage of --base, and a full given that is not the differential's."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.age_keys import needs_age, x25519
from tests.archive.helpers import tree_state
from tests.cli.test_restore_cli import ctl
from tests.jobs.test_sets import build_tree, change_tree, configure, run

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


def make_set(tmp_path, **keys):
    config = configure(tmp_path, **keys)
    runs = []
    for step in (build_tree, change_tree):
        step(tmp_path / "data")
        runs.append(run(config))
    return config, *(tmp_path / "archives" / record.archive.name for record in runs)


@needs_age
def test_an_encrypted_set_restores_from_its_files_with_the_identity(tmp_path):
    key = x25519(tmp_path / "keys")
    _, full, differential = make_set(tmp_path, encrypt_to=[key.recipient])
    assert differential.name.endswith(".tar.zst.age")
    done = ctl("--json", "restore", "--archive", str(differential), "--base", str(full), "--identity",
               str(key.identity), "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["backup"]["base"] == full.name and not summary["refused"]
    assert tree_state(tmp_path / "out" / "files") == tree_state(tmp_path / "data")
    without = ctl("restore", "--archive", str(differential), "--base", str(full), "--to", str(tmp_path / "no"))
    assert without.returncode == 1 and "give the age identity with --identity KEY" in without.stderr
    assert not (tmp_path / "no").exists()


def test_config_restore_and_verify_against_the_source_of_a_differential(tmp_path):
    config, full, differential = make_set(tmp_path)
    done = ctl("restore", "latest", "--config", str(config.path), "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert f"restored {differential.name} over its full {full.name} from local" in done.stdout
    assert tree_state(tmp_path / "out" / "files") == tree_state(tmp_path / "data")
    checked = ctl("--json", "verify", "latest", "--config", str(config.path), "--against-source", "--sample", "1000")
    record = json.loads(checked.stdout)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and not p.is_symlink()]
    assert checked.returncode == 0 and record["base"] == full.name
    assert record["against_source"]["sampled"] == record["against_source"]["unchanged"] == len(files)


def test_a_base_that_is_not_the_differentials_full_is_refused(tmp_path):
    _, full, differential = make_set(tmp_path)
    other = full.with_name(full.name.replace(full.name.split("-")[-1], "0123abcd.tar.zst"))
    shutil.copy(full, other)
    done = ctl("restore", "--archive", str(differential), "--base", str(other), "--to", str(tmp_path / "out"))
    assert done.returncode == 1 and done.stderr == (f"backupctl: {other.name} is not the full of {differential.name} "
                                                    f"(that is the full of run {full.name.split('-')[-1][:8]}...); "
                                                    "nothing restored\n")
    as_full = ctl("restore", "--archive", str(differential), "--base", str(differential), "--to", str(tmp_path / "o"))
    assert as_full.returncode == 1 and "is a differential; give its full" in as_full.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    (["restore", "latest", "--base", "FULL", "--to", "out"], "--base goes with --archive")])
def test_base_without_archive_is_a_usage_mistake(args, message):
    done = ctl(*args)
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == f"backupctl: error: restore: {message} " \
                                                                    "(otherwise a differential's full is found by itself)"
