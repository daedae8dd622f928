"""A healthchecks-style ping server on 127.0.0.1: records every request's path and body; can answer with an
error status, or hold each request until the test lets it go (a slow server)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_LIMIT = 120.0      # a held request is answered after this long at the latest (the server never hangs a test)


class PingServer:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.pings: list[tuple[str, str, str]] = []      # (method, path, body), in the order received
        self.release = threading.Event()
        self.release.set()                                # answer at once; clear() to hold requests
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.path = "/ping/5f3c2e"                        # the check's own part of the URL
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.path}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._record(self.rfile.read(length).decode())

            def do_GET(self):
                self._record("")

            def _record(self, body: str) -> None:
                with server._lock:
                    server.pings.append((self.command, self.path, body))
                server.release.wait(HOLD_LIMIT)
                self.send_response(server.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        return Handler

    def paths(self) -> list[str]:
        with self._lock:
            return [path for _, path, _ in self.pings]

    def __enter__(self) -> "PingServer":
        threading.Thread(target=self._server.serve_forever, daemon=True, name="ping-server").start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
