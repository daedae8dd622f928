"""GNU dumpdir members (typeflag D, or a folder with a GNU.dumpdir pax record): the names a folder holds.

The data is, for each entry, one control byte and a name ending in NUL, then a final NUL. `D` a
subfolder, `Y` a non-folder whose bytes are in this archive, `N` a non-folder kept from an earlier archive.
As `tar -G -x` (GNU tar's purge), the folder is made, and every name in it that is not listed, a `Y` name
that is a folder and a `D` name that is not one are removed, through directory descriptors only: nothing
is resolved through a symlink, and a symlink is removed as the link itself. GNU tar's own rename entries
(R/T/X, written from its snapshot files' inode numbers) are refused: backupd never writes them."""
from __future__ import annotations

import os
import shutil
import stat
from typing import Callable

from .rules import Refused

FOLDER, IN_ARCHIVE, KEPT = ord("D"), ord("Y"), ord("N")
_CONTROLS = {FOLDER, IN_ARCHIVE, KEPT}
_RENAMES = {ord("R"), ord("T"), ord("X")}
MAX_DUMPDIR = 64 << 20          # a dumpdir's data larger than this is refused (millions of names)


def parse(data: bytes) -> dict[str, int]:
    """{name: control byte} of a dumpdir's data; Refused if it is malformed."""
    if not data.endswith(b"\x00"):
        raise Refused("malformed dumpdir: it does not end with a NUL")
    body = data[:-1]
    entries: dict[str, int] = {}
    if not body:
        return entries
    if not body.endswith(b"\x00"):
        raise Refused("malformed dumpdir: its last entry does not end with a NUL")
    for raw in body[:-1].split(b"\x00"):
        if not raw:
            raise Refused("malformed dumpdir: an empty entry")
        control, name = raw[0], raw[1:].decode("utf-8", "surrogateescape")
        if control in _RENAMES:
            raise Refused("dumpdir with GNU tar's rename entries (R/T/X): not supported")
        if control not in _CONTROLS:
            raise Refused(f"malformed dumpdir: unknown control byte {chr(control)!r}")
        if not name or "/" in name or name in (".", ".."):
            raise Refused(f"malformed dumpdir: bad entry name {name!r}")
        entries[name] = control
    return entries


def unwanted(control: int | None, is_dir: bool) -> bool:
    """Whether an entry present in the folder goes (GNU tar's rule)."""
    return control is None or (control == FOLDER and not is_dir) or (control == IN_ARCHIVE and is_dir)


def purge(dir_fd: int, entries: dict[str, int], removed: Callable[[str, bool], None]) -> None:
    """Remove from the open folder what its dumpdir does not keep; removed(name, was_a_folder) after each."""
    with os.scandir(dir_fd) as listing:
        names = [entry.name for entry in listing]
    for name in names:
        try:
            is_dir = stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            continue
        if unwanted(entries.get(name), is_dir):
            remove(dir_fd, name, is_dir)
            removed(name, is_dir)


def remove(dir_fd: int, name: str, is_dir: bool) -> None:
    """Remove one entry of an open folder (a folder with everything in it), never following a symlink."""
    if is_dir:
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
