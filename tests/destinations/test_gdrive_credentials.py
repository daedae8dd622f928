"""Every credential kind reaches the loopback token endpoint; bad credentials say what to do; no secret
ever shows in a log line or an error."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from backupd.destinations.base import DestinationError
from backupd.destinations.gdrive.destination import DriveDestination
from tests.destinations.helpers import gdrive_config
from tests.fakes.oauth import JWT_BEARER

SA_EMAIL = "backupd@test-project.iam.gserviceaccount.com"


def _store(drive, credentials, archive, **options):
    destination = DriveDestination(gdrive_config(drive, credentials, **options), retry_base=0.01)
    try:
        return destination.store(*archive)
    finally:
        destination.close()


def test_service_account_uses_jwt_bearer_with_scope(drive, sa_file, archive):
    _store(drive, sa_file, archive)
    grant = drive.oauth.grants[0]
    assert (grant.grant_type, grant.client, grant.subject) == (JWT_BEARER, SA_EMAIL, "")
    assert grant.scope == "https://www.googleapis.com/auth/drive.file"


def test_service_account_impersonating_a_user(drive, sa_file, archive):
    _store(drive, sa_file, archive, impersonate="ops@example.com", scope="drive")
    grant = drive.oauth.grants[0]
    assert (grant.grant_type, grant.subject) == (JWT_BEARER, "ops@example.com")
    assert grant.scope == "https://www.googleapis.com/auth/drive"


def test_authorized_user_uses_its_token_uri(drive, tmp_path, archive):
    info = drive.oauth.authorized_user()
    stored = _store(drive, drive.write_credentials(tmp_path / "user.json", info), archive)
    assert [(g.grant_type, g.client) for g in drive.oauth.grants] == [("refresh_token", info["client_id"])]
    assert drive.content(stored.file_id) == archive[0].read_bytes()


def test_credentials_name_is_looked_up_in_credentials_directory(drive, rsa_key, tmp_path, archive,
                                                                 monkeypatch):
    (tmp_path / "creds").mkdir()
    drive.write_credentials(tmp_path / "creds" / "gdrive.json", drive.oauth.service_account(key=rsa_key))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    monkeypatch.chdir(tmp_path)
    _store(drive, "gdrive.json", archive)
    assert drive.oauth.grants[0].client == SA_EMAIL


def test_which_kind_was_found_is_logged(drive, sa_file, tmp_path, archive, caplog):
    caplog.set_level(logging.INFO, logger="backupd")
    _store(drive, sa_file, archive)
    assert f"using service account {SA_EMAIL}" in caplog.text


@pytest.mark.parametrize("content,words", [
    (None, ["credentials file not found", "LoadCredential"]),
    ("{not json", ["not valid JSON"]),
    ('{"type": "external_account"}', ["neither a service-account key nor an authorized-user file"]),
    ('{"type": "authorized_user", "client_id": "x"}', ["lacks client_secret, refresh_token", "drive-login"]),
])
def test_unusable_credentials_file_is_a_config_error(drive, tmp_path, archive, content, words):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DestinationError) as caught:
        _store(drive, path, archive)
    assert caught.value.kind == "config"
    assert all(word in str(caught.value) for word in words)


def test_systemd_placeholder_credential_says_nothing_is_installed(drive, tmp_path, archive):
    path = tmp_path / "gdrive.json"
    path.write_text('{"backupd_placeholder": "no credentials file at /etc/backupd/gdrive.json"}')
    with pytest.raises(DestinationError) as caught:
        _store(drive, path, archive)
    assert caught.value.kind == "auth"
    assert "no Google credentials installed (no credentials file at /etc/backupd/gdrive.json)" in str(caught.value)


def test_revoked_refresh_token_asks_for_drive_login(drive, tmp_path, archive):
    info = drive.oauth.authorized_user()
    drive.oauth.revoke(info["refresh_token"])
    with pytest.raises(DestinationError) as caught:
        _store(drive, drive.write_credentials(tmp_path / "user.json", info), archive)
    assert (caught.value.kind, caught.value.permanent) == ("auth", True)
    assert "backupctl drive-login" in str(caught.value)


def test_no_secret_in_logs_or_errors(drive, rsa_key, tmp_path, big_archive, caplog):
    caplog.set_level(logging.DEBUG)
    sa_info = drive.oauth.service_account(key=rsa_key)
    user = drive.oauth.authorized_user()
    for kind in ("401", "503", "drop"):
        drive.inject(kind, nth=3)
    _store(drive, drive.write_credentials(tmp_path / "sa.json", sa_info), big_archive)
    _store(drive, drive.write_credentials(tmp_path / "user.json", user), big_archive, folder="other")
    drive.oauth.revoke(user["refresh_token"])
    errors = []
    for options in ({"folder": "third"}, {"folder": "third", "impersonate": "x@example.com"}):
        with pytest.raises(DestinationError) as caught:
            _store(drive, tmp_path / "user.json", big_archive, **options)
        errors.append(str(caught.value))
    key_body = sa_info["private_key"].splitlines()[5]
    secrets = [key_body, sa_info["private_key_id"], user["client_secret"], user["refresh_token"],
               *drive.oauth.issued]
    text = caplog.text + "\n".join(errors)
    assert len(drive.oauth.issued) >= 3
    assert [s for s in secrets if s in text] == []


def test_google_libraries_load_only_with_a_gdrive_destination():
    code = ("import sys, backupd.destinations.registry, backupd.destinations.gdrive;"
            "print(sorted(m for m in sys.modules if m.startswith(('google', 'googleapiclient', 'httplib2'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
