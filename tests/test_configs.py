"""The test configuration helper writes TOML that reads back as the values it was given."""
import tomllib
from pathlib import Path

import pytest

from tests.configs import config, toml_text, write_config


def test_values_read_back_unchanged():
    document = {"plain": {"text": 'quote " backslash \\ tab \t newline \n escape \x1b delete \x7f ü',
                          "whole": -3, "ratio": 0.25, "flags": [True, False], "nested": [{"a": 1}, []]},
                "odd keys": {"MANIFEST.json": {"path": Path("/srv/a b")}}, "empty": {}}
    back = tomllib.loads(toml_text(document))
    assert back["plain"] == document["plain"]
    assert back["odd keys"] == {"MANIFEST.json": {"path": "/srv/a b"}} and back["empty"] == {}


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), 1e100])
def test_special_floats(number):
    assert tomllib.loads(toml_text({"t": {"n": number}}))["t"]["n"] == number


def test_defaults_put_everything_under_the_base(tmp_path):
    written = tomllib.loads(write_config(tmp_path, daemon={"log_level": "debug"}).read_text())
    assert written == tomllib.loads(toml_text(config(tmp_path, daemon={"log_level": "debug"})))
    assert written["daemon"]["state_dir"] == str(tmp_path / "state") and written["daemon"]["log_level"] == "debug"
    assert written["jobs"] == {"main": {"sources": ["files"], "destinations": ["local"]}}
    assert written["sources"]["files"]["path"] == str(tmp_path / "data")


def test_a_value_toml_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="no TOML form for NoneType"):
        toml_text({"t": {"k": None}})
