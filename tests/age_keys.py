"""Keys for the encryption tests, made by the real tools (age-keygen, ssh-keygen), and the restore of an
encrypted archive with nothing but the age, zstd and tar command-line tools."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

needs_age = pytest.mark.skipif(not (shutil.which("age") and shutil.which("age-keygen")),
                               reason="the age and age-keygen programs are not installed (apt-get install age)")


@dataclass(frozen=True)
class Key:
    recipient: str          # what encrypt_to holds
    identity: Path          # the secret key file age -d -i reads


def x25519(folder: Path, name: str = "age-key.txt") -> Key:
    folder.mkdir(parents=True, exist_ok=True)
    identity = folder / name
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True)
    return Key(public.stdout.strip(), identity)


def ssh(folder: Path, kind: str = "ed25519") -> Key:
    """An ssh key pair of `kind` (ed25519 or rsa); the test is skipped where ssh-keygen is missing."""
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed (apt-get install openssh-client): no ssh key to test with")
    folder.mkdir(parents=True, exist_ok=True)
    identity = folder / f"id_{kind}"
    bits = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *bits, "-N", "", "-C", "test@host", "-f", str(identity)],
                   check=True, capture_output=True)
    return Key(identity.with_suffix(".pub").read_text().strip(), identity)


KEY_MAKERS = {"x25519": x25519, "ssh-ed25519": lambda folder: ssh(folder, "ed25519"),
              "ssh-rsa": lambda folder: ssh(folder, "rsa")}


def age_restore(archive: Path, identity: Path, into: Path) -> Path:
    """`age -d -i KEY ARCHIVE | zstd -dc | tar -x -C DIR`, exactly as a user without backupd runs it."""
    into.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(f"set -o pipefail; age -d -i '{identity}' '{archive}' | zstd -dc | tar -x -C '{into}'",
                          shell=True, executable="bash", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return into
