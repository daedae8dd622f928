"""drive-login runs the installed-app flow against the loopback OAuth server and writes a 0600
authorized-user file that the Drive destination can use."""
from __future__ import annotations

import json
import re
import socket
import stat
import threading
import urllib.request

from backupd.destinations.gdrive import login
from backupd.util import files
from backupd.destinations.gdrive.destination import DriveDestination
from tests.destinations.helpers import gdrive_config
from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_url(capsys, timeout: float) -> tuple[str, str]:
    printed = []

    def url_printed():
        printed.append(capsys.readouterr().out)
        return re.search(r"(http://127\.0\.0\.1:\d+/auth\?\S+)", "".join(printed))

    return wait_for(url_printed, "the authorization URL to be printed", timeout)[1], "".join(printed)


def test_drive_login_writes_private_authorized_user_file(drive, tmp_path, capsys, monkeypatch, archive):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")    # the loopback token endpoint is plain http
    secrets_file = drive.write_credentials(tmp_path / "client.json", drive.oauth.client_secrets(drive.url + "auth"))
    out, port = tmp_path / "gdrive.json", _free_port()
    result = {}
    argv = ["--client-secrets", str(secrets_file), "--out", str(out), "--port", str(port)]
    worker = threading.Thread(target=lambda: result.setdefault("rc", login.main(argv)), daemon=True)
    worker.start()
    url, printed = _wait_for_url(capsys, 10)
    assert f"ssh -L {port}:localhost:{port}" in printed
    with urllib.request.urlopen(url, timeout=10) as answer:      # the browser: consent, then redirect
        assert b"authorised" in answer.read()
    worker.join(10)
    assert result.get("rc") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    info = json.loads(out.read_text())
    assert info["type"] == "authorized_user" and info["token_uri"] == drive.token_uri
    assert info["refresh_token"] not in capsys.readouterr().out
    stored = DriveDestination(gdrive_config(drive, out), retry_base=0.01).store(*archive)
    assert drive.content(stored.file_id) == archive[0].read_bytes()


def test_private_file_is_created_0600_and_replaces_atomically(tmp_path, monkeypatch):
    target = tmp_path / "creds.json"
    target.write_text("old")
    target.chmod(0o644)
    modes = []
    real_replace = files.os.replace
    monkeypatch.setattr(files.os, "replace",
                        lambda src, dst: (modes.append(stat.S_IMODE(files.os.stat(src).st_mode)),
                                          real_replace(src, dst)))
    login.write_private_json(target, {"type": "authorized_user"})
    assert modes == [0o600]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text()) == {"type": "authorized_user"}
