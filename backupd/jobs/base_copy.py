"""The copy of a full's MANIFEST.json read back from a destination, when the state directory lost it."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..archive.manifest import save_compressed
from ..config import DestinationConfig
from ..destinations import registry
from ..util.names import MANIFEST_NAME
from .result import ArchiveInfo


def manifest_from_destination(config: DestinationConfig, state_dir: Path, archive: ArchiveInfo, copy: Path) -> bool:
    """Stream the full from the destination, check its sha256 against the record, keep its manifest at `copy`;
    False when the stream does not match or cannot be read as an archive."""
    from ..restore.reader import ArchiveError
    destination = registry.build(config, state_dir)
    try:
        with tempfile.NamedTemporaryFile(dir=copy.parent if copy.parent.is_dir() else None) as scratch:
            if not _manifest_into(destination.fetch_stream(archive.name), archive.sha256, scratch):
                return False
            scratch.flush()
            save_compressed(Path(scratch.name), copy)
            return True
    except ArchiveError:
        return False                # damaged there: a new full
    finally:
        destination.close()


def _manifest_into(stream, sha256: str, scratch) -> bool:
    """Write the archive's MANIFEST.json into `scratch`; True if there was one and the whole stream's
    sha256 is `sha256`."""
    from ..restore.reader import ArchiveReader
    with ArchiveReader(stream) as reader:
        for member in reader:
            if member.type == "file" and member.name.removeprefix("./") == MANIFEST_NAME:
                for piece in reader.chunks():
                    scratch.write(piece)
    return reader.sha256 == sha256 and scratch.tell() > 0
