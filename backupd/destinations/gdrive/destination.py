"""DriveDestination: backupd's archives in a Drive folder (My Drive or a shared drive)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from ...config import DriveDestinationConfig
from ...util.units import human_size
from ..base import ArchiveMeta, DestinationError, ErrorKind, ProgressCallback, StoredBackup
from . import client as drive_client
from .download import RangedDownload
from .folders import FolderResolver, quote
from .retry import Backoff
from .upload import HashingFileMedia, ResumableUpload

log = logging.getLogger("backupd.destinations.gdrive")
FIELDS = "id,name,size,md5Checksum,sha256Checksum,appProperties,createdTime,webViewLink,parents"
LIST_FIELDS = f"nextPageToken,files({FIELDS})"
PAGE_SIZE = 1000


class DriveDestination:
    verb = "uploading to"
    remote = True

    def __init__(self, config: DriveDestinationConfig, *, state_dir: Path | None = None, cancel=None, retry_base: float = 1.0):
        self.name = config.name
        self.config = config
        self.cancel = cancel
        self.retry_base = retry_base
        self.where = f"gdrive destination '{config.name}'"
        self._client: drive_client.DriveClient | None = None
        self._folder_id: str | None = None

    # plumbing ---------------------------------------------------------------------------------
    @property
    def client(self) -> drive_client.DriveClient:
        if self._client is None:
            self._client = drive_client.connect(self.config, self.where)
        return self._client

    def backoff(self) -> Backoff:
        return Backoff(self.where, self.config.retry_deadline, base=self.retry_base, cancel=self.cancel)

    def _execute(self, request, doing: str):
        return self.client.execute(request, self.backoff(), doing)

    def folder_id(self) -> str:
        if self._folder_id is None:
            resolver = FolderResolver(self.client, self._execute, self.config.shared_drive_id, self.where)
            self._folder_id = resolver.resolve(self.config.folder)
        return self._folder_id

    def _list_args(self) -> dict:
        args = {"supportsAllDrives": True, "includeItemsFromAllDrives": True}
        if self.config.shared_drive_id:
            args.update(corpora="drive", driveId=self.config.shared_drive_id)
        return args

    def _query(self, *terms: str) -> list[dict]:
        """Every backupd file in the folder matching the extra `q` terms (all pages)."""
        q = " and ".join((f"'{quote(self.folder_id())}' in parents", "trashed = false",
                          "appProperties has { key='backupd' and value='1' }") + terms)
        files_api = self.client.service.files()
        request = files_api.list(q=q, pageSize=PAGE_SIZE, fields=LIST_FIELDS, **self._list_args())
        found: list[dict] = []
        while request is not None:
            page = self._execute(request, "listing the backup folder")
            found.extend(page.get("files", []))
            request = files_api.list_next(request, page)
        return found

    # the Destination protocol ----------------------------------------------------------------------
    def store(self, archive: Path, meta: ArchiveMeta, progress: ProgressCallback | None = None) -> StoredBackup:
        size = os.stat(archive).st_size
        if size != meta.size:
            raise DestinationError(f"{self.where}: {archive} has {size} bytes, the run recorded "
                                   f"{meta.size}", kind="verify")
        existing = self._query(f"name = '{quote(meta.name)}'",
                               f"appProperties has {{ key='sha256' and value='{quote(meta.sha256)}' }}")
        if existing:
            log.info("%s: %s is already stored (file id %s)", self.where, meta.name, existing[0]["id"])
            return self._stored(existing[0])
        self._check_quota(meta.name, size)
        body = {"name": meta.name, "parents": [self.folder_id()], "mimeType": "application/zstd",
                "appProperties": {"backupd": "1", "job": meta.job, "run_id": meta.run_id,
                                  "host": meta.host, "sha256": meta.sha256, "created": meta.created}}
        media = HashingFileMedia(archive, size, self.config.chunk_size)
        try:
            upload = ResumableUpload(self.client, body, media, FIELDS, self.backoff(), self.cancel, progress)
            result = upload.run()
            self._verify(result, meta, media.md5_hex())
        finally:
            media.close()
        log.info("%s: stored %s (%d bytes, file id %s)", self.where, meta.name, size, result["id"])
        return self._stored(result)

    def _check_quota(self, name: str, size: int) -> None:
        """Fail before uploading a byte when the account's quota cannot hold the archive (a shared drive has
        no quota of its own to ask, and an unlimited account reports no limit: then nothing is checked)."""
        if self.config.shared_drive_id:
            return
        request = self.client.service.about().get(fields="storageQuota")
        quota = self._execute(request, "reading the storage quota").get("storageQuota") or {}
        if quota.get("limit") is None:
            return
        limit, usage = int(quota["limit"]), int(quota.get("usage") or 0)
        free = max(0, limit - usage)
        if size > free:
            raise DestinationError(
                f"{self.where}: {name} needs {human_size(size)} ({size} bytes) but the Drive account has "
                f"{human_size(free)} free ({free} bytes: {usage} of {limit} used, the trash included); "
                "nothing was uploaded: free space on Drive, then retry with backupctl trigger --upload-pending",
                kind=ErrorKind.QUOTA, permanent=True)

    def _verify(self, result: dict, meta: ArchiveMeta, md5: str | None) -> None:
        """Size, MD5 and (when Drive gives it) SHA-256 must match; otherwise remove the file."""
        checks = {"size": (str(result.get("size")), str(meta.size)),
                  "md5Checksum": (result.get("md5Checksum"), md5),
                  "sha256Checksum": (result.get("sha256Checksum", meta.sha256), meta.sha256)}
        wrong = [name for name, (remote, local) in checks.items() if remote != local or local is None]
        if not wrong:
            return
        self._delete_id(result["id"])
        raise DestinationError(f"{self.where}: uploaded {meta.name} does not match the local archive "
                               f"({', '.join(wrong)} differ); the upload was removed and is retried "
                               "at the next run", kind="verify")

    def list(self, job: str | None = None) -> list[StoredBackup]:
        terms = (f"appProperties has {{ key='job' and value='{quote(job)}' }}",) if job else ()
        backups = [self._stored(item) for item in self._query(*terms)]
        return sorted(backups, key=lambda b: (b.created, b.name), reverse=True)

    def fetch_stream(self, name: str) -> Iterator[bytes]:
        """The archive's bytes in ranged GETs of chunk_size, resumed after a dropped connection."""
        found = self._query(f"name = '{quote(name)}'")
        if not found:
            raise DestinationError(f"{self.where}: no backup named {name}", kind="not-found")
        file_id, backoff = found[0]["id"], self.backoff()
        files_api = self.client.service.files()
        return iter(RangedDownload(lambda: files_api.get_media(fileId=file_id, supportsAllDrives=True),
                                   lambda step, doing: self.client.execute(step, backoff, doing),
                                   int(found[0].get("size") or 0), self.config.chunk_size, name, self.where,
                                   self.cancel, self.client.throttle))

    def fetch(self, name: str, out_path: Path) -> None:
        with open(out_path, "wb") as out:
            for data in self.fetch_stream(name):
                out.write(data)

    def delete(self, name: str) -> None:
        """Delete for good, or with `trash = true` move to the Drive trash; a trashed file is no longer listed."""
        for item in self._query(f"name = '{quote(name)}'"):
            self._delete_id(item["id"], trash=self.config.trash)

    def _delete_id(self, file_id: str, trash: bool = False) -> None:
        files_api = self.client.service.files()
        if trash:
            request = files_api.update(fileId=file_id, body={"trashed": True}, supportsAllDrives=True, fields="id")
        else:
            request = files_api.delete(fileId=file_id, supportsAllDrives=True)
        try:
            self._execute(request, "moving a backup to the trash" if trash else "deleting a backup")
        except DestinationError as exc:
            if exc.kind != "not-found":     # already gone: deleting is idempotent
                raise

    def clean_debris(self) -> list[str]:
        """Nothing to clean: an interrupted resumable upload never becomes a file (Drive drops the session)."""
        return []

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _stored(self, item: dict) -> StoredBackup:
        props = item.get("appProperties") or {}
        return StoredBackup(name=item["name"], size=int(item.get("size") or 0),
                            location=f"gdrive://{item['id']}", job=props.get("job", ""),
                            run_id=props.get("run_id", ""), sha256=props.get("sha256", ""),
                            created=props.get("created") or item.get("createdTime", ""),
                            file_id=item["id"], link=item.get("webViewLink", ""),
                            extra={"host": props.get("host", "")})
