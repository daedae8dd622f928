"""The config classes are the schema: each key declared once, with its parser, default and documentation."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from backupd.config import (DESTINATION_TYPES, SOURCE_TYPES, DaemonConfig, DirectorySourceConfig,
                            DriveDestinationConfig, JobConfig, parse)
from backupd.config.schema import REQUIRED, keys
from backupd.destinations import registry as destination_registry
from backupd.sources import registry as source_registry

ROOT = Path(__file__).resolve().parents[2]
TABLES = [DaemonConfig, JobConfig, *SOURCE_TYPES.values(), *DESTINATION_TYPES.values()]


@pytest.mark.parametrize("cls", TABLES, ids=lambda cls: cls.__name__)
def test_every_key_has_a_parser_and_a_doc_and_is_in_the_shipped_example(cls):
    example = (ROOT / "etc" / "backupd.toml").read_text()
    for name, spec in keys(cls).items():
        assert callable(spec.parse) and spec.doc.strip(), name
        assert f"\n{name} = " in example or f"\n# {name} = " in example, f"{name} is not in etc/backupd.toml"


def test_each_type_has_a_config_class_and_an_implementation():
    assert set(SOURCE_TYPES) == set(source_registry.TYPES)
    assert set(DESTINATION_TYPES) == set(destination_registry.TYPES)
    for name, cls in {**SOURCE_TYPES, **DESTINATION_TYPES}.items():
        assert cls.type == name


def test_configs_are_frozen_with_real_attributes():
    config = DirectorySourceConfig(name="etc", path=Path("/etc"))
    assert (config.type, config.exclude, config.one_file_system) == ("directory", (), False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.path = Path("/srv")
    with pytest.raises(AttributeError):
        config.format   # a sqlite key: not there on a directory source
    with pytest.raises(TypeError):
        DirectorySourceConfig(name="etc")   # path is required


def test_omitted_keys_get_the_declared_defaults(tmp_path):
    config = parse({"jobs": {"j": {"sources": ["s"], "destinations": ["d"]}},
                    "sources": {"s": {"type": "directory", "path": "/srv"}},
                    "destinations": {"d": {"type": "gdrive", "credentials": "sa.json"}}}, tmp_path / "backupd.toml")
    assert config.daemon == DaemonConfig()
    assert config.jobs["j"] == JobConfig(name="j", sources=("s",), destinations=("d",))
    assert config.destinations["d"] == DriveDestinationConfig(name="d", credentials="sa.json")
    for table in (config.sources["s"], config.destinations["d"]):
        for name, spec in keys(type(table)).items():
            if spec.default is not REQUIRED:
                assert getattr(table, name) == spec.default


def test_validating_a_gdrive_destination_does_not_load_the_google_client(tmp_path):
    path = tmp_path / "backupd.toml"
    path.write_text('[destinations.d]\ntype = "gdrive"\ncredentials = "sa.json"\n')
    code = (f"import sys, backupd.config; print(backupd.config.load({str(path)!r}).destinations['d'].type, "
            "sorted(m for m in sys.modules if m.startswith(('google', 'googleapiclient', 'httplib2'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "gdrive []"
