"""Configuration: typed model, validation with every error reported at once."""
from .load import ConfigError, default_path, load, parse
from .model import Config, DaemonConfig, DestinationConfig, JobConfig, SourceConfig

__all__ = ["Config", "ConfigError", "DaemonConfig", "DestinationConfig", "JobConfig",
           "SourceConfig", "default_path", "load", "parse"]
