"""The resumable upload loop: our own retries around next_chunk(num_retries=0), resuming from the
offset Drive confirms (the library's own retries hang on a consumed chunk body: see the reference)."""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import google.auth.exceptions
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaUpload

from ..base import DestinationError, ProgressCallback
from .client import TRANSIENT_ERRORS, DriveClient
from .errors import describe, to_error, transient
from .retry import Backoff
from .throttle import pace

log = logging.getLogger("backupd.destinations.gdrive")
MIME = "application/zstd"
MAX_401 = 3          # consecutive 401s despite fresh tokens: the credentials are not accepted


class HashingFileMedia(MediaUpload):
    """A file read one chunk at a time (bytes, so a resent request carries its body) and hashed with MD5.

    The chunk on the wire is hashed in a helper thread while it is sent (hashlib releases the GIL), so the
    upload holds about one chunk and hashing costs no wall time. Bytes read again after a resume are not
    hashed twice."""

    def __init__(self, path: Path, size: int, chunk_size: int, mimetype: str = MIME):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._size, self._chunk, self._mimetype = size, chunk_size, mimetype
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="gdrive-md5")
        self._hashing: Future | None = None
        self.md5 = hashlib.md5()
        self.hashed = 0

    def chunksize(self):
        return self._chunk

    def mimetype(self):
        return self._mimetype

    def size(self):
        return self._size

    def resumable(self):
        return True

    def has_stream(self):
        return False

    def getbytes(self, begin, length):
        self._settle()                     # the previous chunk is hashed before this one: order kept
        data = os.pread(self._fd, length, begin)
        if begin <= self.hashed < begin + len(data):
            self._hashing = self._hasher.submit(self.md5.update, memoryview(data)[self.hashed - begin:])
            self.hashed = begin + len(data)
        return data

    def _settle(self) -> None:
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def md5_hex(self) -> str | None:
        """The MD5 of the whole file, once every byte has been read."""
        self._settle()
        return self.md5.hexdigest() if self.hashed == self._size else None

    def close(self) -> None:
        self._hasher.shutdown(wait=True)
        os.close(self._fd)


class ResumableUpload:
    """One file's upload: create() starts it, run() drives it to the final file resource."""

    def __init__(self, client: DriveClient, body: dict, media: HashingFileMedia, fields: str,
                 backoff: Backoff, cancel=None, progress: ProgressCallback | None = None):
        self.client, self.body, self.media, self.fields = client, body, media, fields
        self.backoff, self.cancel, self.progress = backoff, cancel, progress
        self.sessions = 0
        self._unauthorized = 0

    def _new_request(self):
        self.sessions += 1
        return self.client.service.files().create(body=self.body, media_body=self.media,
                                                  fields=self.fields, supportsAllDrives=True)

    def run(self) -> dict:
        request = self._new_request()
        while True:
            if self.cancel is not None:
                self.cancel.check()          # abandon the session: Drive lists nothing of it
            before = request.resumable_progress
            pace(self.client.throttle, min(self.media.chunksize(), self.media.size() - before), self.cancel)
            try:
                status, response = request.next_chunk(http=self.client.upload_http, num_retries=0)
            except HttpError as exc:
                request = self._on_http_error(request, exc)
                continue
            except google.auth.exceptions.RefreshError:
                self.client.refresh()
                continue
            except TRANSIENT_ERRORS as exc:
                self.backoff.failed(describe(exc))
                continue
            if response is not None:
                self._report(self.media.size())
                return response
            self._advanced(request, before)

    def _advanced(self, request, before: int) -> None:
        """After a 308: progress, or (no Range, or no advance) ask Drive where it stands first."""
        self._unauthorized = 0
        if request.resumable_progress > before:
            self.backoff.succeeded()
            self._report(request.resumable_progress)
            return
        request._in_error_state = True     # next next_chunk() sends `bytes */N` and resumes from there
        self.backoff.failed(f"chunk at {before} not accepted (Range {request.resumable_progress})")

    def _on_http_error(self, request, exc: HttpError):
        status = int(exc.resp.status)
        if status in (404, 410) and request.resumable_uri:
            if self.sessions > 1:
                raise DestinationError(f"{self.client.where}: the upload session expired twice; the upload "
                                       "is retried at the next run", kind="network", permanent=False) from None
            log.warning("%s: upload session expired (HTTP %d); starting one new upload", self.client.where,
                        status)
            return self._new_request()
        if status == 401:
            self._unauthorized += 1
            if self._unauthorized > MAX_401:
                raise to_error(exc, self.client.where, "upload", self.client.scrub_values()) from None
            log.info("%s: access token rejected during upload; refreshing it", self.client.where)
            self.client.refresh()
            return request
        if not transient(exc):
            raise to_error(exc, self.client.where, "upload", self.client.scrub_values()) from None
        self.backoff.failed(describe(exc))
        return request

    def _report(self, done: int) -> None:
        if self.progress:
            self.progress(done, self.media.size())
