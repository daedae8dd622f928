"""The committed Prometheus alert rules: `promtool check rules` passes (when promtool is installed; CI unpacks
it from Debian's prometheus package), and every backupd series they name is one the metrics file holds."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backupd import config as config_module
from backupd.daemon import metrics
from backupd.jobs.history import History
from tests.configs import write_config

RULES = Path(__file__).resolve().parents[2] / "packaging" / "backupd-alerts.yml"
ALERTS = {"BackupdNoRecentSuccess": "time() - backupd_last_success_timestamp_seconds > 26 * 3600",
          "BackupdRunFailed": 'backupd_last_run_status{status!="success"} == 1',
          "BackupdJobStale": "backupd_job_stale == 1",
          "BackupdVerifyFailed": "backupd_last_verify_ok == 0",
          "BackupdUploadsWaiting": "backupd_pending_uploads > 0",
          "BackupdMetricsStale": 'time() - node_textfile_mtime_seconds{file=~"(.*/)?backupd\\\\.prom"} > 900'}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_alert_rules():
    done = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_the_rules_are_the_expected_alerts_in_order():
    found = re.findall(r"^ *- alert: (\S+)\n(?: *#.*\n)* *expr: (.+)$", RULES.read_text(), re.MULTILINE)
    assert found == list(ALERTS.items())


def test_every_series_the_rules_name_is_in_the_metrics_file(tmp_path):
    config = config_module.load(write_config(tmp_path))
    state = metrics.State(config=config, history=History(config.daemon.state_dir), next_run=lambda name: None)
    written = metrics.registry(state)
    families = list(text_string_to_metric_families(generate_latest(written).decode()))
    names = {family.name for family in families} | {s.name for family in families for s in family.samples}
    named = set(re.findall(r"\bbackupd_[a-z_]+", RULES.read_text()))
    assert named and named <= names, named - names
    assert re.search(r"node_textfile_mtime_seconds\{file=~\"[^\"]*backupd\\\\\.prom\"\}", RULES.read_text())
