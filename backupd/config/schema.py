"""What each configuration table may hold: key -> (parser, default). REQUIRED marks a key with no default."""
from __future__ import annotations

from pathlib import Path

from . import fields as f

REQUIRED = object()

DAEMON = {
    "state_dir": (f.path, Path("/var/lib/backupd")),
    "socket": (f.path, Path("/run/backupd/backupd.sock")),
    "control_group": (f.string, "backupd"),
    "log_level": (f.one_of("debug", "info", "warning", "error"), "info"),
    "log_format": (f.one_of("json", "text"), "json"),
    "stop_timeout": (f.duration, 30.0),
}

JOB = {
    "schedule": (f.crontab, f.crontab("0 3 * * *")),
    "timezone": (f.timezone, "UTC"),
    "sources": (f.string_list, REQUIRED),
    "destinations": (f.string_list, REQUIRED),
    "compression_level": (f.integer(1, 22), 3),
    "catch_up": (f.boolean, True),
    "misfire_grace": (f.duration, 6 * 3600.0),
}

SOURCE_TYPES = {
    "directory": {
        "path": (f.path, REQUIRED),
        "exclude": (f.string_list, ()),
        "one_file_system": (f.boolean, False),
    },
    "sqlite": {
        "path": (f.path, REQUIRED),
        "format": (f.one_of("sqlite", "csv"), "sqlite"),
    },
    "command": {
        "command": (f.argv, REQUIRED),
        "output": (f.member_name, REQUIRED),
        "timeout": (f.duration, 3600.0),
    },
}

DESTINATION_TYPES = {
    "local": {
        "path": (f.path, REQUIRED),
    },
    "gdrive": {
        "credentials": (f.credential_reference, REQUIRED),
        "folder": (f.nonempty_string, "backupd"),
        "shared_drive_id": (f.string, ""),
        "impersonate": (f.string, ""),
        "scope": (f.one_of("drive.file", "drive"), "drive.file"),
        "chunk_size": (f.chunk_size, 8 * 1024 * 1024),
        "endpoint": (f.string, ""),
        "retry_deadline": (f.duration, 600.0),
        "timeout": (f.duration, 60.0),
    },
}

TOP_LEVEL = ("daemon", "jobs", "sources", "destinations")
