"""Run the loopback Drive on its own (benchmarks, manual tries):

    python -m tests.fakes.serve --port 8765 --credentials DIR
prints the endpoint and writes DIR/sa.json (a fresh service-account key pointing at it). A configured
gdrive destination then needs only `endpoint = "http://127.0.0.1:8765/"` and `credentials = "DIR/sa.json"`.
For a raw comparison, POST /session?name=N&size=S (no auth) answers with an upload URL for `curl -T FILE URL`.
"""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from .drive import DriveServer


def main() -> None:
    parser = argparse.ArgumentParser(description="loopback Google Drive v3 + OAuth server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--credentials", type=Path, required=True, help="directory for sa.json")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with DriveServer(port=args.port) as drive:
        args.credentials.mkdir(parents=True, exist_ok=True)
        sa = drive.write_credentials(args.credentials / "sa.json", drive.oauth.service_account())
        print(f"endpoint {drive.url}\ncredentials {sa}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
