"""A small notes service: its data in SQLite, its State exported as CSV by backupd's `python` source."""
