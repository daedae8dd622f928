"""backupd: a systemd-native backup daemon."""
__version__ = "0.1.0"
