"""ENOSPC and EIO injected into each stage of a whole run, in-process with the real runner: the source's file
read, the zstd compressor (its write and its end-of-frame flush), the age encryptor, the writer that hashes and
writes the archive, and the copy to a local destination on another file system. Each: the run fails with the
stage's category and a one-line message naming where and the errno's text, nothing of it is left in the spool
or the destination nor held open, and the next run, without the fault, succeeds."""
from __future__ import annotations

import errno
import io
import os
import random
import shutil
from pathlib import Path

import pytest
import zstandard

from backupd.archive import encrypt, stream, writer
from backupd.config import load
from backupd.destinations import local
from tests import age_keys
from tests.configs import directory_source, job, write_config
from tests.jobs.test_disk_full import run_to_the_end     # the real runner, in a thread, bounded
from tests.stress import probes
from tests.stress.backups import destination_debris, spool_debris

KiB = 1 << 10
VICTIM = "victim.bin"           # the source file whose read fails
ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}


class Fault:
    """One injected error: raise() counts the hits, so a test can tell the fault was reached."""

    def __init__(self, code: int) -> None:
        self.code, self.hits = code, 0

    def raise_it(self):
        """Raise the OSError (from the thread of the stage that called it)."""
        self.hits += 1
        raise OSError(self.code, os.strerror(self.code))


class _Proxy:
    """A module as one backupd module sees it, with some of its names replaced (only there)."""

    def __init__(self, module, **replaced) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._module, name)


# -- where each fault goes ----------------------------------------------------------------------------------------
def _source_read(monkeypatch, fault: Fault) -> None:
    """os.read of the archive writer fails for the victim file's descriptor only."""
    def read(fd, size):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(VICTIM):
            fault.raise_it()
        return os.read(fd, size)
    monkeypatch.setattr(writer, "os", _Proxy(os, read=read))


class _FailingZstdWriter:
    """zstd's stream writer with `failing` ("write" or "flush") raising the fault."""

    def __init__(self, real, fault: Fault, failing: str) -> None:
        self._real, self._fault, self._failing = real, fault, failing

    def write(self, data):
        return self._fault.raise_it() if self._failing == "write" else self._real.write(data)

    def flush(self, mode=zstandard.FLUSH_BLOCK):
        return self._fault.raise_it() if self._failing == "flush" else self._real.flush(mode)


def _compressor(failing: str):
    def install(monkeypatch, fault: Fault) -> None:
        class Compressor(zstandard.ZstdCompressor):
            def stream_writer(self, *args, **kwargs):
                return _FailingZstdWriter(super().stream_writer(*args, **kwargs), fault, failing)
        monkeypatch.setattr(stream, "zstandard", _Proxy(zstandard, ZstdCompressor=Compressor))
    return install


def _encryptor(monkeypatch, fault: Fault) -> None:
    """What pyrage writes the ciphertext to fails."""
    monkeypatch.setattr(encrypt._Ciphertext, "write", lambda self, data: fault.raise_it())


def _writer(monkeypatch, fault: Fault) -> None:
    """The writer stage's write of the archive file fails (after hashing, as a full disk does)."""
    monkeypatch.setattr(stream, "_write_all", lambda file, data: fault.raise_it())


class _FailingCopy(io.FileIO):
    def __init__(self, path, fault: Fault) -> None:
        super().__init__(path, "wb")
        self.fault = fault

    def write(self, data) -> int:
        return self.fault.raise_it()


def _destination_copy(monkeypatch, fault: Fault) -> None:
    """The archive cannot be hard-linked (another file system), and the copy's write fails."""
    def link(*args, **kwargs):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    def opened(path, mode="r", *args, **kwargs):
        if "w" in mode and Path(path).name.startswith(local.PARTIAL_PREFIX):
            return _FailingCopy(path, fault)
        return open(path, mode, *args, **kwargs)
    monkeypatch.setattr(local, "os", _Proxy(os, link=link))
    monkeypatch.setattr(local, "open", opened, raising=False)


# stage -> (installer, the run's error category, what the message names besides the errno's text)
STAGES = {
    "source-read": (_source_read, "source", lambda where: str(where["data"] / VICTIM)),
    "compressor-write": (_compressor("write"), "archive", lambda where: "archive"),
    "compressor-flush": (_compressor("flush"), "archive", lambda where: "archive"),
    "encryptor": (_encryptor, "archive", lambda where: "encrypt"),
    "writer": (_writer, "archive", lambda where: str(where["spool"])),
    "destination-copy": (_destination_copy, "destination", lambda where: str(where["archives"])),
}


class Misreported(AssertionError):
    """The run's category, message or destination was not as the issue asks (collected to the test's end, so
    every other check still runs)."""


CASES = [pytest.param(stage, name, id=f"{stage}-{name}") for stage in STAGES for name in ERRNOS]


def fill(data: Path) -> None:
    """Small files (read with os.read) and 3 MiB of incompressible ones, so every stage sees several pieces."""
    rng = random.Random(14)
    data.mkdir()
    for index in range(40):
        (data / f"small-{index:02d}.txt").write_text(f"line {index}\n" * 50)
    (data / VICTIM).write_bytes(rng.randbytes(64 * KiB))
    for index in range(3):
        (data / f"large-{index}.bin").write_bytes(rng.randbytes(1024 * KiB))


def left_open(*folders: Path) -> list[str]:
    return [target for folder in folders for target in probes.open_files(os.getpid(), folder)]


@pytest.mark.parametrize("stage, errno_name", CASES)
def test_an_error_injected_into_a_stage_fails_the_run_cleanly_and_the_next_run_works(tmp_path, monkeypatch,
                                                                                   stage, errno_name, figures):
    install, category, named = STAGES[stage]
    encrypt_to = []
    if stage == "encryptor":
        if not shutil.which("age-keygen"):
            pytest.skip("age-keygen is not installed (apt-get install age)")
        encrypt_to = [age_keys.x25519(tmp_path / "keys").recipient]
    where = {"data": tmp_path / "data", "spool": tmp_path / "state" / "spool", "archives": tmp_path / "archives"}
    fill(where["data"])
    config = load(write_config(tmp_path, sources={"files": directory_source(where["data"])},
                               jobs={"main": job(["files"], encrypt_to=encrypt_to)}))
    fault = Fault(ERRNOS[errno_name])
    with monkeypatch.context() as patched:
        install(patched, fault)
        record = run_to_the_end(config)
    assert fault.hits >= 1, f"the {stage} fault was never reached"
    message = record.error.message if record.error else ""
    assert record.status == "failed" and os.strerror(fault.code) in message, (record.status, record.error)
    assert len(message.splitlines()) == 1 and len(message) < 400, message
    misreported = [f"{what}: {record.error}" for what, holds in [
        (f"category {category}", record.error.category == category),
        (f"a message naming {named(where)}", named(where) in message),
        (f"no debris at the destination ({destination_debris(where['archives'])})",
         destination_debris(where["archives"]) == [])] if not holds]
    held = {record.archive.name} if record.error.category == "destination" else set()  # kept for a retry
    assert spool_debris(where["spool"], held) == []
    assert left_open(where["spool"], where["archives"]) == []

    again = run_to_the_end(config)
    assert again.status == "success", again.error
    assert (where["archives"] / again.archive.name).is_file()
    assert spool_debris(where["spool"], held) == [] and left_open(where["spool"], where["archives"]) == []
    figures(stage=stage, errno=errno_name, hits=fault.hits, category=record.error.category,
            error=repr(message.replace(str(tmp_path), "<tmp>")))
    if misreported:
        raise Misreported("; ".join(misreported))
