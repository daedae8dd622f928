"""HTTP request handling for the loopback Drive: routing, the upload protocol, faults."""
from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .drive_state import FOLDER, UNIT, QueryError, Session
from .oauth import GrantError

READ_BLOCK = 1 << 20
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_STATUS_FAULTS = {   # kind -> (status, reason, message)
    "503": (503, "backendError", "Backend Error"),
    "500": (500, "internalError", "Internal Error"),
    "429": (429, "rateLimitExceeded", "Rate Limit Exceeded"),
    "rate-limit": (403, "userRateLimitExceeded", "User Rate Limit Exceeded."),
    "sa-no-quota": (403, "storageQuotaExceeded", "Service Accounts do not have storage quota. Leverage "
                    "shared drives (https://developers.google.com/workspace/drive/api/guides/about-"
                    "shareddrives), or use OAuth delegation instead."),
    "storage-quota": (403, "storageQuotaExceeded", "The user's Drive storage quota has been exceeded."),
    "401": (401, "authError", "Request had invalid authentication credentials."),
    "expire": (404, "notFound", "Upload session not found."),
    "expire-410": (410, "gone", "Upload session expired."),
    "not-found": (404, "notFound", "File not found."),
}


class DriveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # no 40 ms Nagle stalls
        self.drive = self.server.drive
        self.drive.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.drive.track(self.connection, False)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    # routing ---------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.params = dict(parse_qsl(url.query))
        self.delay = 0.0
        self.consumed = 0
        category, action, args = self._route(method, url.path)
        self.drive.requests[category] += 1
        fault = self.drive.faults.take(category)
        try:
            if fault is None or not self._fault(fault, category, args):
                action(*args)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, method: str, path: str):
        parts = path.strip("/").split("/")
        upload = self.params.get("uploadType")
        if path == "/token" and method == "POST":
            return "token", self._token, ()
        if path == "/auth" and method == "GET":
            return "auth", self._authorize, ()
        if path == "/session" and method == "POST":
            return "start", self._raw_session, ()
        if path == "/upload/drive/v3/files" and method == "PUT":
            kind = "status" if self.headers.get("Content-Range", "").startswith("bytes */") else "chunk"
            return kind, self._put_session, (self.params.get("upload_id", ""),)
        if path == "/upload/drive/v3/files" and method == "POST":
            return ("start", self._start, ()) if upload == "resumable" else ("multipart", self._multipart, ())
        if parts[:3] == ["drive", "v3", "files"] and len(parts) <= 4:
            file_id = parts[3] if len(parts) == 4 else None
            if file_id and method == "GET" and self.params.get("alt") == "media":
                return "media", self._api, (self._media, file_id)
            table = {("GET", False): self._list, ("POST", False): self._create,
                     ("GET", True): self._get, ("DELETE", True): self._delete, ("PATCH", True): self._update}
            action = table.get((method, bool(file_id)))
            if action:
                return "api", self._api, (action, file_id)
        if parts == ["drive", "v3", "about"] and method == "GET":
            return "about", self._api, (self._about, None)
        if parts[:3] == ["drive", "v3", "drives"] and len(parts) == 4 and method == "GET":
            return "api", self._api, (self._get_drive, parts[3])
        return "other", self._not_routed, ()

    # faults ------------------------------------------------------------------------------------
    def _fault(self, fault, category: str, args: tuple) -> bool:
        """Apply a fault; True when it answered the request (the normal action must not run)."""
        if fault.kind == "slow":
            self.delay = fault.delay
            return False
        if fault.kind in ("corrupt", "cut"):     # the normal action runs, damaged (cut: a download dropped midway)
            setattr(self, fault.kind, True)
            return False
        session = self.drive.state.sessions.get(args[0]) if category in ("chunk", "status") else None
        length = int(self.headers.get("Content-Length") or 0)
        if fault.kind == "drop":
            self._drain(session, length // 2)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return True
        self._drain(session, length)
        if fault.kind == "invalid-grant":
            self._json(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        elif fault.kind == "no-range":
            self._reply(308, b"")
        else:
            if fault.kind == "401":
                self.drive.oauth.invalidate_access_tokens()
            if fault.kind.startswith("expire") and session:
                session.expired = True
            self._error(*_STATUS_FAULTS[fault.kind])
        return True

    def _drain(self, session: Session | None, length: int) -> None:
        left = length
        while left > 0:
            block = self.rfile.read(min(READ_BLOCK, left))
            if not block:
                break
            left -= len(block)
            self._count(session, len(block))

    def _count(self, session: Session | None, n: int) -> None:
        with self.drive.state.lock:
            if session is not None:
                session.bytes_received += n
            else:
                self.drive.requests["bytes"] += n

    # replies -----------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, reason: str, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message,
                                      "errors": [{"domain": "global", "reason": reason, "message": message}]}})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _not_routed(self) -> None:
        self._body()
        self._error(404, "notFound", f"no route for {self.command} {urlsplit(self.path).path}")

    # OAuth ---------------------------------------------------------------------------------------
    def _token(self) -> None:
        form = dict(parse_qsl(self._body().decode()))
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):    # client credentials may come as HTTP Basic auth
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            form.update(client_id=unquote(client_id), client_secret=unquote(client_secret))
        try:
            self._json(200, self.drive.oauth.grant(form))
        except GrantError as exc:
            self._json(400, {"error": exc.code, "error_description": exc.description})

    def _authorize(self) -> None:
        """The consent screen, already agreed: redirect back with a code."""
        code = self.drive.oauth.authorize(self.params.get("client_id", ""), self.params.get("scope", ""))
        target = self.params["redirect_uri"] + "?" + urlencode(
            {"code": code, "state": self.params.get("state", ""), "scope": self.params.get("scope", "")})
        self._reply(302, b"", {"Location": target})

    def _authorized(self) -> bool:
        if self.drive.oauth.check(self.headers.get("Authorization")) is None:
            self._body()
            self._error(*_STATUS_FAULTS["401"])
            return False
        return True

    # metadata API --------------------------------------------------------------------------------
    def _api(self, action, file_id) -> None:
        if self._authorized():
            action(file_id)

    def _visible(self, file_id: str):
        entry = self.drive.state.files.get(file_id)
        if entry is None or (entry.drive_id and self.params.get("supportsAllDrives") != "true"):
            return None
        return entry

    def _list(self, _):
        all_drives = (self.params.get("includeItemsFromAllDrives") == "true"
                      and self.params.get("supportsAllDrives") == "true")
        try:
            found = self.drive.state.query(self.params.get("q", ""), all_drives=all_drives,
                                           drive_id=self.params.get("driveId", ""))
        except QueryError as exc:
            return self._error(400, "invalid", str(exc))
        start, size = int(self.params.get("pageToken") or 0), int(self.params.get("pageSize") or 100)
        page = {"kind": "drive#fileList",
                "files": [f.resource(self.drive.url) for f in found[start:start + size]]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        self._json(200, page)

    def _create(self, _):
        metadata = json.loads(self._body() or b"{}")
        try:
            entry = self.drive.state.create(metadata, None if metadata.get("mimeType") == FOLDER else b"")
        except KeyError as exc:
            return self._error(404, "notFound", f"File not found: {exc.args[0]}.")
        self._json(200, entry.resource(self.drive.url))

    def _get(self, file_id):
        entry = self._visible(file_id)
        if entry is None:
            return self._error(404, "notFound", f"File not found: {file_id}.")
        self._json(200, entry.resource(self.drive.url))

    def _get_drive(self, drive_id):
        name = self.drive.state.shared_drives.get(drive_id)
        if name is None:
            return self._error(404, "notFound", f"Shared drive not found: {drive_id}")
        self._json(200, {"kind": "drive#drive", "id": drive_id, "name": name})

    def _delete(self, file_id):
        with self.drive.state.lock:
            entry = self._visible(file_id)
            if entry is None:
                return self._error(404, "notFound", f"File not found: {file_id}.")
            del self.drive.state.files[file_id]
        self._reply(204, b"")

    def _update(self, file_id):
        """files.update: only `trashed` (what backupd changes) is honoured."""
        body = json.loads(self._body() or b"{}")
        with self.drive.state.lock:
            entry = self._visible(file_id)
            if entry is None:
                return self._error(404, "notFound", f"File not found: {file_id}.")
            entry.trashed = bool(body.get("trashed", entry.trashed))
        self._json(200, entry.resource(self.drive.url))

    def _about(self, _):
        if self.params.get("fields") != "storageQuota":
            return self._error(400, "invalid", f"this server answers fields=storageQuota only, not "
                                               f"{self.params.get('fields')!r}")
        self._json(200, {"storageQuota": self.drive.state.storage_quota()})

    def _media(self, file_id):
        entry = self._visible(file_id)
        if entry is None or entry.content is None:
            return self._error(404, "notFound", f"File not found: {file_id}.")
        data, total = entry.content, len(entry.content)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not match:
            return self._reply(200, bytes(data), {"Content-Type": entry.mimeType})
        first, last = int(match[1]), min(int(match[2] or total - 1), total - 1)
        if first >= total:
            return self._reply(416, b"", {"Content-Range": f"bytes */{total}"})
        if getattr(self, "cut", False):
            return self._cut_short(bytes(data[first:last + 1]))
        self._reply(206, bytes(data[first:last + 1]), {"Content-Range": f"bytes {first}-{last}/{total}"})

    def _cut_short(self, body: bytes) -> None:
        """Announce the whole body, send half of it, drop the connection."""
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    # uploads ---------------------------------------------------------------------------------------
    def _start(self) -> None:
        if not self._authorized():
            return
        metadata = json.loads(self._body() or b"{}")
        if self.drive.state.parent_drive(list(metadata.get("parents") or ["root"])) is None:
            return self._error(404, "notFound", f"File not found: {metadata['parents'][0]}.")
        total = self.headers.get("X-Upload-Content-Length")
        url = self.drive.new_session(metadata, int(total) if total else None)
        self._reply(200, b"", {"Location": url})

    def _raw_session(self) -> None:
        """An upload session without OAuth (for `curl -T` comparisons): the URL is the body."""
        self._body()
        metadata = {"name": self.params.get("name", "raw"), "parents": ["root"]}
        size = self.params.get("size")
        self._reply(200, self.drive.new_session(metadata, int(size) if size else None).encode())

    def _multipart(self) -> None:
        if not self._authorized():
            return
        body = self._body()
        self._count(None, len(body))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        parts = list(email.message_from_bytes(head + body, policy=email.policy.HTTP).iter_parts())
        metadata = json.loads(parts[0].get_payload(decode=True))
        try:
            entry = self.drive.state.create(metadata, parts[1].get_payload(decode=True))
        except KeyError as exc:
            return self._error(404, "notFound", f"File not found: {exc.args[0]}.")
        self._json(200, entry.resource(self.drive.url))

    def _put_session(self, upload_id: str) -> None:
        session = self.drive.state.sessions.get(upload_id)
        auth = self.headers.get("Authorization")
        if auth and self.drive.oauth.check(auth) is None:
            self._drain(session, int(self.headers.get("Content-Length") or 0))
            return self._error(*_STATUS_FAULTS["401"])
        if session is None or session.expired:
            self._drain(session, int(self.headers.get("Content-Length") or 0))
            return self._error(404, "notFound", "Upload session not found.")
        if session.file_id:
            self._drain(session, int(self.headers.get("Content-Length") or 0))
            return self._json(200, self.drive.state.files[session.file_id].resource(self.drive.url))
        self._receive(session)

    def _receive(self, session: Session) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        match = _RANGE.fullmatch(self.headers.get("Content-Range", ""))
        if self.headers.get("Content-Range", "").startswith("bytes */"):
            self._drain(session, length)
            return self._progress(session)
        first, total = (int(match[1]), match[3]) if match else (0, str(length))
        if total != "*":
            session.total = int(total)
        if first > len(session.data):
            self._drain(session, length)
            return self._progress(session)
        complete = self._store(session, first, length)
        if complete is None:
            return
        if complete:
            return self._finish(session)
        self._progress(session)

    def _store(self, session: Session, first: int, length: int) -> bool | None:
        """Read one chunk into the session as it arrives; True when the upload is complete, None when the
        client left mid-chunk (then nothing of the chunk is kept)."""
        end = first + length
        if session.total is None or end < session.total:
            end -= end % UNIT          # only whole 256 KiB units persist before the last chunk
        mark, pos, left = session.mark(), first, length
        while left > 0:
            block = self.rfile.read(min(READ_BLOCK, left))
            if not block:
                session.rollback(mark)
                self.close_connection = True
                return None
            left -= len(block)
            self._count(session, len(block))
            low, high = max(pos, len(session.data)), min(pos + len(block), end)
            if high > low:
                session.append(memoryview(block)[low - pos:high - pos])
            pos += len(block)
        return session.total is not None and len(session.data) >= session.total

    def _progress(self, session: Session) -> None:
        if session.total is not None and session.data and len(session.data) >= session.total:
            return self._finish(session)
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        self._reply(308, b"", headers)

    def _finish(self, session: Session) -> None:
        fault = self.drive.faults.take("finish")
        entry = self.drive.state.finish(session)
        if fault is not None or getattr(self, "corrupt", False):
            self.drive.state.corrupt(entry)
        self._json(200, entry.resource(self.drive.url))
