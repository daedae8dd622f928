"""Which Drive failures are worth retrying, and what to tell the operator about the rest."""
from __future__ import annotations

import json
import re

from ..base import DestinationError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
RETRY_REASONS = {"userRateLimitExceeded", "rateLimitExceeded", "backendError", "internalError"}

SA_NO_QUOTA = ("the service account has no storage quota of its own: set shared_drive_id to a shared "
               "drive it is a member of, or set impersonate to a user (domain-wide delegation)")
PERMANENT = {   # Drive error reason -> (kind, what to do)
    "storageQuotaExceeded": ("quota", "the Drive storage quota is exceeded: free space in the account "
                             "or shared drive, or buy more storage"),
    "quotaExceeded": ("quota", "the Drive quota is exceeded: free space or wait for the quota to reset"),
    "dailyLimitExceeded": ("quota", "the daily Drive API limit is exceeded: the upload is retried next run"),
    "uploadLimitExceeded": ("quota", "the daily Drive upload limit (about 750 GiB) is exceeded"),
    "teamDriveFileLimitExceeded": ("quota", "the shared drive holds too many files: remove old ones"),
    "authError": ("auth", "Drive refused the credentials: run `backupctl drive-login` again "
                  "(authorized user) or check the service-account key"),
    "insufficientPermissions": ("auth", "the credentials lack the Drive scope or permission: check "
                                "`scope`, the folder's sharing, or the shared drive membership"),
    "insufficientFilePermissions": ("auth", "no write permission on the Drive folder: share it with "
                                    "the account or pick another folder"),
    "appNotAuthorizedToFile": ("auth", "with scope drive.file backupd only sees files it created: use "
                               "scope = \"drive\" or let backupd create the folder"),
    "forbidden": ("auth", "Drive forbids this: check the folder's sharing and the shared drive membership"),
    "domainPolicy": ("auth", "the Workspace domain policy forbids this app: ask the domain admin"),
    "notFound": ("not-found", "the Drive folder or shared drive was not found or is not shared with "
                 "this account: check `folder` and `shared_drive_id`"),
}
STATUS_KIND = {401: "auth", 403: "auth", 404: "not-found", 410: "not-found"}

_SECRETISH = [re.compile(p) for p in (
    r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----",   # PEM keys
    r"ya29\.[\w.-]+",                                      # access tokens
    r"1//[\w.-]+",                                         # refresh tokens
    r"GOCSPX-[\w-]+",                                      # client secrets
    r"eyJ[\w-]+\.[\w-]+\.[\w-]+",                          # JWTs / assertions
)]


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove every known secret value and anything shaped like a Google secret from text."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    for pattern in _SECRETISH:
        text = pattern.sub("[redacted]", text)
    return text


def details(exc) -> tuple[int, str, str]:
    """(status, first error reason, Drive's message) of a googleapiclient HttpError."""
    status = int(getattr(exc.resp, "status", 0) or 0)
    try:
        error = json.loads(exc.content).get("error", {})
    except (ValueError, TypeError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        return status, str(error), ""
    reasons = error.get("errors") or [{}]
    return status, str(reasons[0].get("reason", "")), str(error.get("message", ""))


def transient(exc) -> bool:
    status, reason, _ = details(exc)
    return status in RETRY_STATUS or (status == 403 and reason in RETRY_REASONS)


def describe(exc) -> str:
    """A short, secret-free description of a failure for logs."""
    if hasattr(exc, "resp") and hasattr(exc, "content"):
        status, reason, _ = details(exc)
        return f"HTTP {status} {reason}".strip()
    return scrub(f"{type(exc).__name__}: {exc}")[:200]


def to_error(exc, where: str, doing: str, secrets: tuple[str, ...] = ()) -> DestinationError:
    """The DestinationError (permanent) for a Drive HttpError that retrying cannot fix."""
    status, reason, message = details(exc)
    kind, advice = PERMANENT.get(reason, (STATUS_KIND.get(status, "io"), ""))
    if reason == "storageQuotaExceeded" and "Service Account" in message:
        advice = SA_NO_QUOTA
    said = scrub(message, secrets)[:300]
    text = f"{where}: {doing} failed: HTTP {status} {reason}".rstrip()
    text += f" ({said})" if said else ""
    return DestinationError(f"{text}; {advice}" if advice else text, kind=kind, permanent=True)
