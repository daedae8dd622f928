"""Downloads from Drive in ranged GETs: a dropped connection or a transient fault costs at most the rest
of one chunk; the next request asks for the first byte not yet received."""
from __future__ import annotations

import http.client
import logging
import re
from typing import Callable, Iterator

from googleapiclient.errors import HttpError

from ..base import DestinationError, ErrorKind
from .throttle import TokenBucket, pace

log = logging.getLogger("backupd.destinations.gdrive")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class RangedDownload:
    """The bytes of one Drive file, `chunk` at a time. `make_request()` gives a fresh get_media request;
    `execute(step, doing)` runs a step with the destination's retries (DriveClient.execute)."""

    def __init__(self, make_request: Callable, execute: Callable, size: int, chunk: int, name: str,
                 where: str, cancel=None, throttle: TokenBucket | None = None) -> None:
        self.make_request, self.execute = make_request, execute
        self.size, self.chunk, self.name, self.where, self.cancel = size, chunk, name, where, cancel
        self.throttle = throttle    # the destination's bandwidth_limit
        self.requests = 0           # ranged GETs answered (for logs and tests)

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        while offset < self.size:
            if self.cancel is not None:
                self.cancel.check()
            last = min(offset + self.chunk, self.size) - 1
            pace(self.throttle, last + 1 - offset, self.cancel)
            data = self.execute(_RangedGet(self.make_request, offset, last), f"downloading {self.name}")
            self.requests += 1
            if not data:
                raise DestinationError(f"{self.where}: Drive gave no data for {self.name} at byte {offset} "
                                       f"of {self.size}", kind=ErrorKind.NETWORK, permanent=False)
            offset += len(data)
            yield data


class _RangedGet:
    """One ranged GET in the `execute(num_retries=0)` shape DriveClient.execute retries: the bytes from
    `first` (fewer than asked when the connection dropped midway: what arrived counts)."""

    def __init__(self, make_request: Callable, first: int, last: int) -> None:
        self.make_request, self.first, self.last = make_request, first, last

    def execute(self, num_retries: int = 0) -> bytes:
        request = self.make_request()
        headers = {**request.headers, "range": f"bytes={self.first}-{self.last}"}
        try:
            response, content = request.http.request(request.uri, method="GET", headers=headers)
        except http.client.IncompleteRead as exc:
            if exc.partial:
                log.warning("a download was cut short after %d bytes; resuming from there", len(exc.partial))
                return bytes(exc.partial)[: self.last - self.first + 1]
            raise ConnectionResetError(f"connection dropped during a download: {exc!r}") from None
        except http.client.HTTPException as exc:
            raise ConnectionResetError(f"connection dropped during a download: {exc!r}") from None
        if response.status >= 300:
            raise HttpError(response, content, uri=request.uri)
        return self._in_range(response, content)

    def _in_range(self, response, content: bytes) -> bytes:
        """The part of the answer that starts at `first` (a server may ignore Range and send all of it)."""
        wanted = self.last - self.first + 1
        if response.status == 200:
            return content[self.first:self.first + wanted]
        match = _CONTENT_RANGE.fullmatch(response.get("content-range", ""))
        if match and int(match[1]) != self.first:
            raise ConnectionResetError(f"Drive answered bytes from {match[1]}, not from {self.first}")
        return content[:wanted]
