"""Configuration: typed model, validation with every error reported at once."""
from .destinations import DESTINATION_TYPES, DestinationConfig, DriveDestinationConfig, LocalDestinationConfig
from .load import ConfigError, default_path, load, parse
from .model import Config, DaemonConfig, JobConfig
from .sources import (MANIFEST_NAME, SOURCE_TYPES, CommandSourceConfig, DirectorySourceConfig, PythonSourceConfig,
                      SourceConfig, SqliteSourceConfig)

__all__ = ["DESTINATION_TYPES", "MANIFEST_NAME", "SOURCE_TYPES", "CommandSourceConfig", "Config", "ConfigError",
           "DaemonConfig", "DestinationConfig", "DirectorySourceConfig", "DriveDestinationConfig", "JobConfig",
           "LocalDestinationConfig", "PythonSourceConfig", "SourceConfig", "SqliteSourceConfig", "default_path",
           "load", "parse"]
