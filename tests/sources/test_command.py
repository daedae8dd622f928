"""The command source: stdout archived byte for byte; failures and timeouts carry the stderr tail."""
from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

import pytest

from backupd.archive.writer import ArchiveWriter
from backupd.cancel import CancelToken, Cancelled
from backupd.sources.base import SourceError
from backupd.sources.command import STDERR_TAIL, CommandSource
from tests.archive.helpers import HEADER, extract, read_manifest, source_config, write_archive
from tests.waiting import wait_for


def command(argv, **options) -> CommandSource:
    return CommandSource(source_config("dump", "command", command=tuple(argv), output="app.dump", **options))


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def backup(tmp_path: Path, source: CommandSource):
    archive = tmp_path / "run.tar.zst.tmp"
    stats = write_archive(archive, [source], tmp_path / "work")
    return extract(archive, tmp_path / "restored"), stats


def test_stdout_is_archived_byte_exact(tmp_path):
    code = ("import random, sys; rng = random.Random(7)\n"
            "for _ in range(40): sys.stdout.buffer.write(rng.randbytes(100_003))\n"
            "sys.stderr.write('progress noise\\n')")
    restored, stats = backup(tmp_path, command(python(code)))
    data = (restored / "dump" / "app.dump").read_bytes()
    rng = __import__("random").Random(7)
    assert data == b"".join(rng.randbytes(100_003) for _ in range(40))
    member = read_manifest(restored)["members"][0]
    assert member == {"name": "dump/app.dump", "type": "file", "size": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()}
    assert stats.bytes_in == len(data)
    assert list((tmp_path / "work").iterdir()) == []


def test_nonzero_exit_fails_with_exit_code_and_bounded_stderr_tail(tmp_path):
    code = ("import sys\n"
            "sys.stderr.write('early line that scrolls away\\n' + 'filler\\n' * 2000)\n"
            "sys.stderr.write('pg_dump: error: connection to server failed\\n'); sys.exit(3)")
    with pytest.raises(SourceError) as caught:
        backup(tmp_path, command(python(code)))
    message = str(caught.value)
    assert message.startswith("command ") and "exited with code 3" in message
    assert message.endswith("pg_dump: error: connection to server failed")
    assert "early line" not in message and len(message) < STDERR_TAIL + 200
    assert not (tmp_path / "run.tar.zst.tmp").exists()


def test_timeout_kills_the_process_group_and_reports_stderr(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
            "sys.stderr.write('dumping table big...\\n'); sys.stderr.flush(); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"timed out after 1s.*stderr tail: dumping table big\.\.\."):
        backup(tmp_path, command(python(code), timeout=1.0))
    assert time.monotonic() - started < 15
    grandchild = int(pidfile.read_text())
    wait_for(lambda: not process_alive(grandchild), "the command's child to be killed with it", timeout=10)


def process_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_stops_the_command_and_removes_the_archive(tmp_path):
    marker = tmp_path / "started"
    code = f"import time; open({str(marker)!r}, 'w').close(); time.sleep(60)"
    token = CancelToken()

    def cancel_when_started():
        end = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < end:
            token.wait(0.01)
        token.cancel("daemon is stopping")

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    archive = tmp_path / "run.tar.zst.tmp"
    started = time.monotonic()
    with pytest.raises(Cancelled):
        with ArchiveWriter(archive, header=HEADER, cancel=token) as writer:
            (tmp_path / "work").mkdir()
            command(python(code)).write(writer.source("dump"), tmp_path / "work")
    canceller.join()
    assert marker.exists() and time.monotonic() - started < 15
    assert not archive.exists() and list((tmp_path / "work").iterdir()) == []


def test_missing_program_fails_naming_it(tmp_path):
    with pytest.raises(SourceError, match="cannot start command 'no-such-dump-tool'"):
        backup(tmp_path, command(["no-such-dump-tool", "--all"]))


def test_argv_is_not_passed_through_a_shell(tmp_path):
    restored, _ = backup(tmp_path, command(["echo", "$HOME", "; echo injected", "*"]))
    assert (restored / "dump" / "app.dump").read_bytes() == b"$HOME ; echo injected *\n"
