"""Benchmark harness: backupd against tar|zstd, restic and borg (run `python -m bench --help`)."""
