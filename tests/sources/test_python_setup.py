"""What a python source is set up with: its configuration table, the application's own interpreter (a second
virtualenv without backupd), and the child script that interpreter runs (standard library only)."""
from __future__ import annotations

import ast
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from backupd.config import ConfigError, parse
from tests.sources.test_python import app, backup, source


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory) -> Path:
    """A second virtualenv made from the system's python, without pip and without backupd."""
    base = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    venv = tmp_path_factory.mktemp("appvenv") / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def test_the_application_interpreter_runs_the_child_without_backupd(tmp_path, other_venv):
    folder = app(tmp_path, """
        import importlib.util, sys

        class State:
            def dump(self, folder):
                found = importlib.util.find_spec("backupd") is not None
                return {"env": [["executable", "prefix", "backupd"], [sys.executable, sys.prefix, found]]}
    """)
    restored, _ = backup(tmp_path, source(folder, interpreter=other_venv))
    with open(restored / "env.csv", newline="") as handle:
        header, row = list(csv.reader(handle))
    assert row == [str(other_venv), str(other_venv.parent.parent), "False"]
    assert row[0] != sys.executable


def test_the_child_script_imports_only_the_standard_library():
    script = Path(__file__).parents[2] / "backupd" / "sources" / "python_child.py"
    tree = ast.parse(script.read_text(), feature_version=(3, 8))     # runs on an application's older python
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


def python_table(**keys) -> dict:
    return {"jobs": {"j": {"sources": ["app"], "destinations": ["d"]}},
            "sources": {"app": {"type": "python", "factory": "myapp.state:State", **keys}},
            "destinations": {"d": {"type": "local", "path": "/srv/backups"}}}


def test_the_config_table_reads_every_key(tmp_path):
    config = parse(python_table(method="export", interpreter="venv/bin/python", path=["/srv/myapp"],
                                env={"MYAPP_SETTINGS": "/etc/myapp.toml"}, timeout="30m"), tmp_path / "b.toml")
    app_source = config.sources["app"]
    assert (app_source.factory, app_source.method, app_source.timeout) == ("myapp.state:State", "export", 1800.0)
    assert app_source.interpreter == tmp_path / "venv" / "bin" / "python"
    assert app_source.path == (Path("/srv/myapp"),) and dict(app_source.env) == {"MYAPP_SETTINGS": "/etc/myapp.toml"}
    defaults = parse(python_table(), tmp_path / "b.toml").sources["app"]
    assert (defaults.method, defaults.interpreter, defaults.path, defaults.env) == ("dump", None, (), ())


@pytest.mark.parametrize("keys, expected", [
    ({"factory": "myapp.state"}, "At 'sources.app.factory': must be an import string like 'myapp.state:State'"),
    ({"factory": "my-app:State"}, "At 'sources.app.factory': must be an import string"),
    ({"method": "dump()"}, "At 'sources.app.method': must be a Python name like 'dump', not 'dump()'"),
    ({"path": ["relative/dir"]}, "At 'sources.app.path': must hold absolute paths, not 'relative/dir'"),
    ({"env": ["A=b"]}, "At 'sources.app.env': must be a table of NAME = \"value\", not a list"),
    ({"env": {"A-B": "x"}}, "At 'sources.app.env': 'A-B' is not an environment variable name"),
    ({"env": {"A": 1}}, "At 'sources.app.env': A must be a string without NUL bytes, not an integer"),
])
def test_config_mistakes_name_the_key(tmp_path, keys, expected):
    with pytest.raises(ConfigError) as caught:
        parse(python_table(**keys), tmp_path / "b.toml")
    assert expected in str(caught.value)
