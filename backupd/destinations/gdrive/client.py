"""Credentials, the Drive service object and its HTTP transports (the only place that builds them)."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import google.auth.exceptions
import google.auth.transport
import google_auth_httplib2
import httplib2
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient import discovery
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError

from ...config import DriveDestinationConfig
from ..base import DestinationError
from .errors import describe, scrub, transient
from .throttle import TokenBucket

log = logging.getLogger("backupd.destinations.gdrive")

SCOPES = {"drive.file": "https://www.googleapis.com/auth/drive.file",
          "drive": "https://www.googleapis.com/auth/drive"}
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# failures worth another try: transport errors of httplib2 and the socket, token endpoint unreachable
TRANSIENT_ERRORS = (OSError, httplib2.HttpLib2Error, google.auth.exceptions.TransportError)
SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")


def credentials_path(value: str | Path, where: str) -> Path:
    """`credentials` as a path, or a name in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)."""
    value = str(value)
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    candidates = [Path(value)]
    if directory and "/" not in value:
        candidates.insert(0, Path(directory) / value)
    for path in candidates:
        if path.is_file():
            return path
    looked = " or ".join(str(p) for p in candidates)
    raise DestinationError(f"{where}: credentials file not found: {looked} (set `credentials` to a path, "
                           "or a name given to LoadCredential=)", kind="config")


def _read_info(path: Path, where: str) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise DestinationError(f"{where}: cannot read credentials {path}: {reason}", kind="config") from None
    if not isinstance(info, dict):
        raise DestinationError(f"{where}: credentials {path} is not a JSON object", kind="config")
    if "backupd_placeholder" in info:   # the unit's SetCredential= fallback: LoadCredential= found no file
        raise DestinationError(f"{where}: no Google credentials installed ({info['backupd_placeholder']}); "
                               "install the key or authorized-user file there and restart", kind="auth")
    return info


def _service_account(info: dict, path: Path, scopes: list, impersonate: str, where: str):
    try:
        creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    except (ValueError, KeyError, TypeError):
        raise DestinationError(f"{where}: the service-account key in {path} is malformed "
                               "(download a new JSON key)", kind="config") from None
    if impersonate:
        creds = creds.with_subject(impersonate)
    who = f"service account {info.get('client_email', '?')}"
    return creds, who + (f" acting as {impersonate}" if impersonate else "")


def _authorized_user(info: dict, path: Path, scopes: list, impersonate: str, where: str):
    if impersonate:
        raise DestinationError(f"{where}: `impersonate` needs a service-account key, but {path} holds an "
                               "authorized user", kind="config")
    missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
    if missing:
        raise DestinationError(f"{where}: authorized-user file {path} lacks {', '.join(missing)} "
                               "(run `backupctl drive-login` again)", kind="config")
    # from_authorized_user_file ignores token_uri: build the credentials ourselves so it is honoured
    creds = user_credentials.Credentials(None, refresh_token=info["refresh_token"],
                                         client_id=info["client_id"], client_secret=info["client_secret"],
                                         token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI, scopes=scopes)
    return creds, "authorized user (OAuth refresh token)"


LOADERS = {"service_account": _service_account, "authorized_user": _authorized_user}


def load_credentials(path: Path, scope: str, impersonate: str, where: str):
    """(credentials, description, secrets) from a service-account key or an authorized-user file."""
    info = _read_info(path, where)
    loader = LOADERS.get(info.get("type"))
    if loader is None:
        raise DestinationError(f"{where}: {path} is neither a service-account key nor an authorized-user "
                               f"file (type={info.get('type')!r})", kind="config")
    creds, who = loader(info, path, [SCOPES[scope]], impersonate, where)
    secrets = tuple(str(info[k]) for k in SECRET_FIELDS if info.get(k))
    return creds, who, secrets


def _http(timeout: float) -> httplib2.Http:
    http = httplib2.Http(timeout=timeout)
    http.redirect_codes = http.redirect_codes - {308}   # 308 means "resume incomplete" to Drive
    return http


@dataclass
class DriveClient:
    """The Drive service plus the transport for upload chunks, on which a 401 surfaces to the caller."""

    service: object
    upload_http: google_auth_httplib2.AuthorizedHttp
    credentials: object
    secrets: tuple
    where: str
    throttle: TokenBucket | None = None     # the destination's bandwidth_limit, shared by uploads and downloads

    def refresh(self) -> None:
        """Get a fresh access token (after a 401); failures become DestinationError."""
        try:
            self.credentials.refresh(google_auth_httplib2.Request(_http(30.0)))
        except google.auth.exceptions.RefreshError as exc:
            code = str(exc.args[0]).split(":")[0] if exc.args else "refused"
            raise DestinationError(f"{self.where}: the token endpoint refused the credentials "
                                   f"({scrub(code, self.scrub_values())[:60]}): run `backupctl drive-login` "
                                   "again (authorized user) or check the service-account key and its "
                                   "delegation", kind="auth", permanent=True) from None

    def scrub_values(self) -> tuple:
        token = getattr(self.credentials, "token", None)
        return self.secrets + ((token,) if token else ())

    def execute(self, request, backoff, doing: str):
        """Run one API request, retrying transient faults under `backoff`."""
        from .errors import to_error
        while True:
            try:
                result = request.execute(num_retries=0)
                backoff.succeeded()
                return result
            except HttpError as exc:
                if not transient(exc):
                    raise to_error(exc, self.where, doing, self.scrub_values()) from None
                backoff.failed(describe(exc))
            except google.auth.exceptions.RefreshError:
                self.refresh()
            except TRANSIENT_ERRORS as exc:
                backoff.failed(describe(exc))

    def close(self) -> None:
        for http in (self.upload_http.http, getattr(self.service._http, "http", None)):
            for conn in getattr(http, "connections", {}).values():
                conn.close()


def connect(config: DriveDestinationConfig, where: str) -> DriveClient:
    """Load the credentials and build the Drive v3 service (pointed at `endpoint` when set)."""
    path = credentials_path(config.credentials, where)
    creds, who, secrets = load_credentials(path, config.scope, config.impersonate, where)
    log.info("%s: using %s from %s", where, who, path)
    api_http = google_auth_httplib2.AuthorizedHttp(creds, http=_http(config.timeout))
    upload_http = google_auth_httplib2.AuthorizedHttp(creds, http=_http(config.timeout),
                                                      refresh_status_codes=())
    if config.endpoint:
        doc = json.loads(get_static_doc("drive", "v3"))
        doc["rootUrl"] = config.endpoint.rstrip("/") + "/"
        doc.pop("mtlsRootUrl", None)
        service = discovery.build_from_document(doc, http=api_http)
    else:
        service = discovery.build("drive", "v3", http=api_http, static_discovery=True,
                                  cache_discovery=False)
    throttle = TokenBucket(config.bandwidth_limit) if config.bandwidth_limit else None
    return DriveClient(service, upload_http, creds, secrets, where, throttle)
