"""Find or create the folder path `folder` ("backupd/myhost") under My Drive or a shared drive."""
from __future__ import annotations

import logging

from ..base import DestinationError

log = logging.getLogger("backupd.destinations.gdrive")
FOLDER_MIME = "application/vnd.google-apps.folder"


def quote(value: str) -> str:
    """Escape a value for a single-quoted string in a Drive `q` expression."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class FolderResolver:
    def __init__(self, client, execute, shared_drive_id: str, where: str):
        self.client, self.execute = client, execute
        self.shared_drive_id, self.where = shared_drive_id, where

    def resolve(self, path: str) -> str:
        """The folder id of `path`, creating the missing parts."""
        parent = self._root()
        for part in [p for p in path.strip("/").split("/") if p]:
            parent = self._child(parent, part) or self._create(parent, part)
        return parent

    def _root(self) -> str:
        if not self.shared_drive_id:
            return "root"
        request = self.client.service.drives().get(driveId=self.shared_drive_id, fields="id,name")
        try:
            self.execute(request, f"opening shared drive {self.shared_drive_id}")
        except DestinationError as exc:
            if exc.kind in ("not-found", "auth"):
                raise DestinationError(f"{self.where}: shared drive {self.shared_drive_id} was not found or "
                                       "this account is not a member: check `shared_drive_id` and add the "
                                       "account to the shared drive", kind="not-found") from None
            raise
        return self.shared_drive_id

    def _child(self, parent: str, name: str) -> str | None:
        q = (f"name = '{quote(name)}' and '{quote(parent)}' in parents and mimeType = '{FOLDER_MIME}' "
             "and trashed = false")
        args = {"supportsAllDrives": True, "includeItemsFromAllDrives": True}
        if self.shared_drive_id:
            args.update(corpora="drive", driveId=self.shared_drive_id)
        request = self.client.service.files().list(q=q, pageSize=10, fields="files(id,name)", **args)
        found = self.execute(request, f"looking up folder {name!r}").get("files", [])
        return found[0]["id"] if found else None

    def _create(self, parent: str, name: str) -> str:
        body = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
        request = self.client.service.files().create(body=body, fields="id", supportsAllDrives=True)
        created = self.execute(request, f"creating folder {name!r}")
        log.info("%s: created Drive folder %r (id %s)", self.where, name, created["id"])
        return created["id"]
