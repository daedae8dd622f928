"""backupctl restore and verify as processes: the file-only way (no configuration, no daemon), what the
output says, refused members, progress on a terminal, usage mistakes, and start-up: the other verbs never
import the restore engine."""
from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import sys
import tarfile

import pytest

from backupd.sources.directory import DirectorySource
from tests.archive.helpers import source_config, tree_state, write_archive
from tests.cli.test_ctl import BACKUPCTL
from tests.restore.crafted import craft, file, member, symlink


def ctl(*args, **streams):
    environment = {k: v for k, v in os.environ.items() if k != "BACKUPD_SOCKET"}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | streams
    return subprocess.run(BACKUPCTL + list(args), text=True, env=environment, timeout=60, **streams)


@pytest.fixture
def archive(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "big.bin").write_bytes(os.urandom(4 << 20))
    (data / "note.txt").write_text("note\n")
    os.symlink("note.txt", data / "link")
    path = tmp_path / "daily.tar.zst"
    write_archive(path, [DirectorySource(source_config("data", "directory", path=data))], tmp_path / "work")
    return path, data


def test_the_file_alone_restores_and_verifies_without_config_or_daemon(archive, tmp_path):
    path, data = archive
    done = ctl("--socket", str(tmp_path / "no-daemon.sock"), "restore", "--archive", str(path),
               "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"restored {path.name} from {path} into {tmp_path / 'out'}: 2 files, ")
    assert tree_state(tmp_path / "out" / "data") == tree_state(data)
    verified = ctl("--json", "verify", "--archive", str(path))
    record = json.loads(verified.stdout)
    assert verified.returncode == 0 and record["status"] == "success" and record["members"] == 5


def test_json_restore_selection_and_a_non_empty_target(archive, tmp_path):
    path, _ = archive
    out = tmp_path / "out"
    done = ctl("--json", "restore", "--archive", str(path), "--to", str(out), "--path", "data/sub/*", "--path",
               "data/note.txt")
    summary = json.loads(done.stdout)
    assert (summary["files"], summary["symlinks"]) == (2, 0) and summary["skipped"] > 0
    assert summary["to"] == str(out) and summary["backup"]["size"] == path.stat().st_size
    again = ctl("restore", "--archive", str(path), "--to", str(out))
    assert again.returncode == 1 and again.stderr == f"backupctl: {out} is not empty (restore into an empty " \
                                                     "folder, or force it)\n"
    assert ctl("restore", "--archive", str(path), "--to", str(out), "--force").returncode == 0


def test_refused_members_are_named_and_exit_1_while_the_rest_is_restored(tmp_path):
    crafted = craft(tmp_path / "evil.tar.zst", [file("s/ok.txt"), symlink("s/escape", "../../outside"),
                                                member("s/dev", tarfile.CHRTYPE)])
    done = ctl("restore", "--archive", str(crafted), "--to", str(tmp_path / "out"))
    assert done.returncode == 1
    refused = [line for line in done.stderr.splitlines() if line.startswith("refused: ")]
    assert [line.split(":")[1].strip() for line in refused] == ["s/escape", "s/dev"]
    assert "2 members refused" in done.stdout and (tmp_path / "out/s/ok.txt").exists()
    assert not (tmp_path / "outside").exists()


def test_a_corrupt_file_is_reported_and_nothing_restored(archive, tmp_path):
    path, _ = archive
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(data)
    verified = ctl("verify", "--archive", str(path))
    assert verified.returncode == 1 and verified.stdout.startswith(f"FAILED: {path.name} at {path}")
    done = ctl("restore", "--archive", str(path), "--to", str(tmp_path / "out"))
    assert done.returncode == 1 and done.stderr.endswith("nothing restored\n") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_encrypted_archive_without_an_identity_is_one_line(archive, tmp_path):
    path, _ = archive
    encrypted = path.with_name(path.name + ".age")
    path.rename(encrypted)
    done = ctl("restore", "--archive", str(encrypted), "--to", str(tmp_path / "out"))
    assert (done.returncode, done.stderr) == (1, f"backupctl: {encrypted.name} is encrypted: give the age "
                                                 "identity with --identity KEY\n")


def on_a_terminal(*args: str) -> tuple[int, str]:
    """(exit code, what backupctl wrote to its stderr, a pseudo-terminal)."""
    leader, follower = pty.openpty()
    with subprocess.Popen(BACKUPCTL + list(args), stdout=subprocess.DEVNULL, stderr=follower) as proc:
        os.close(follower)
        chunks = []
        with contextlib.suppress(OSError):          # EIO once the child closed the terminal
            while chunk := os.read(leader, 4096):
                chunks.append(chunk)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode()


def test_progress_on_a_terminal_shows_bytes_rate_and_eta(archive, tmp_path):
    path, _ = archive
    code, text = on_a_terminal("restore", "--archive", str(path), "--to", str(tmp_path / "out"))
    assert code == 0
    assert f"\r\x1b[Krestoring {path.name}: " in text and "/s, ETA " in text and " of 4.0 MiB (" in text
    assert text.endswith("\r\x1b[K")            # cleared before the summary


@pytest.mark.parametrize("args, message", [
    (["restore", "latest"], "restore: say where with --to DIR"),
    (["restore", "--to", "x"], "restore: name the BACKUP, or give --archive FILE (not both)"),
    (["restore", "latest", "--archive", "f", "--to", "x"], "name the BACKUP, or give --archive FILE (not both)"),
    (["verify", "latest", "--sample", "5"], "verify: --sample goes with --against-source"),
    (["verify", "--archive", "f", "--against-source"], "--against-source needs the configuration"),
    (["verify", "--archive", "f", "--destination", "d"], "--destination does not go with --archive"),
    (["restore", "latest", "--to"], "option --to needs a value"),
])
def test_usage_mistakes_exit_2(args, message):
    done = ctl(*args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_the_other_verbs_never_import_the_restore_engine():
    probe = ("import sys; from backupd.cli import ctl; ctl.parse_args(['restore', 'latest', '--to', 'x']); "
             "print(sorted(m for m in sys.modules if m.startswith(('backupd.restore', 'backupd.jobs', 'zstandard', "
             "'backupd.cli.restore'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
