"""`backupctl drive-login` / `backupd drive-login`: the OAuth installed-app flow for a personal Google
account; writes an authorized-user file (client id, client secret, refresh token) with mode 0600."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...util.files import write_atomic
from .client import GOOGLE_TOKEN_URI, SCOPES
from .errors import scrub

DEFAULT_PORT = 8085
INSTRUCTIONS = """\
To authorise backupd, open this URL in a browser and allow access:

    {{url}}

Google then redirects the browser to http://localhost:{port}/ on the machine running the browser.
On a headless server, first forward that port from your workstation:

    ssh -L {port}:localhost:{port} THIS-SERVER

then open the URL in the workstation's browser. Waiting for the redirect...
"""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="drive-login", description=__doc__.splitlines()[0])
    parser.add_argument("--client-secrets", required=True, type=Path,
                        help="OAuth client (Desktop app) JSON downloaded from the Google Cloud console")
    parser.add_argument("--out", required=True, type=Path, help="where to write the authorized-user file")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="loopback redirect port")
    parser.add_argument("--scope", choices=sorted(SCOPES), default="drive.file")
    parser.add_argument("--browser", action="store_true", help="try to open a local browser")
    return parser.parse_args(argv)


def write_private_json(path: Path, info: dict) -> None:
    """Write JSON atomically into a file that is 0600 from its creation (never chmod-ed afterwards)."""
    write_atomic(path, json.dumps(info, indent=2).encode(), mode=0o600)


def authorized_user_info(creds) -> dict:
    return {"type": "authorized_user", "client_id": creds.client_id, "client_secret": creds.client_secret,
            "refresh_token": creds.refresh_token, "token_uri": creds.token_uri or GOOGLE_TOKEN_URI}


def run(args: argparse.Namespace) -> Path:
    """Run the flow (printing the instructions and URL) and write the file."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_secrets_file(str(args.client_secrets), scopes=[SCOPES[args.scope]])
    creds = flow.run_local_server(host="localhost", port=args.port, open_browser=args.browser,
                                  authorization_prompt_message=INSTRUCTIONS.format(port=args.port),
                                  success_message="backupd: authorised; you may close this window.",
                                  access_type="offline", prompt="consent")
    if not creds.refresh_token:
        raise RuntimeError("Google returned no refresh token; revoke backupd's access in your Google "
                           "account settings and run drive-login again")
    write_private_json(args.out, authorized_user_info(creds))
    return args.out


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        out = run(args)
    except KeyboardInterrupt:
        print("drive-login: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:   # any failure: one scrubbed line, never a token
        print(f"drive-login: failed: {scrub(f'{type(exc).__name__}: {exc}')[:300]}", file=sys.stderr)
        return 1
    print(f"drive-login: wrote {out} (mode 0600). Use it as `credentials` of a gdrive destination, "
          "e.g. with systemd LoadCredential=.")
    return 0
