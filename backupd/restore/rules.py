"""What a member may be: names, link targets, mode bits and the --source / --path selection.

The rules hold by construction in the extractor (every component opened relative to its parent's
descriptor with O_NOFOLLOW); these checks give the one-line reason a member is refused."""
from __future__ import annotations

import fnmatch
import re

SPECIAL_BITS = 0o7000           # setuid, setgid, sticky: never restored
_BIT_NAMES = ((0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky"))

# member type -> why it is refused (types not listed and not extracted are refused as unsupported)
REFUSED_TYPES = {
    "char": "character device: not restored",
    "block": "block device: not restored",
    "fifo": "FIFO (named pipe): not restored",
    "other:sparse": "sparse file: not supported",
}


class Refused(Exception):
    """A member that is not extracted; the message is the reason."""


def parts_of(name: str, what: str = "name") -> list[str]:
    """The components of a member name or hard link target, relative to the restore folder.
    '.' components and one trailing '/' are dropped; [] is the folder itself."""
    if "\x00" in name:
        raise Refused(f"NUL byte in the {what}")
    if name.startswith("/"):
        raise Refused(f"absolute {what}")
    parts = [part for part in name.removesuffix("/").split("/") if part != "."]
    if "" in parts:
        raise Refused(f"empty component in the {what}")
    if ".." in parts:
        raise Refused(f"'..' component in the {what}")
    return parts


def symlink_problem(depth: int, target: str) -> str | None:
    """Why a symlink `depth` folders below the restore folder may not point at `target`, or None.

    The target must stay inside the folder when resolved from the link's folder: leading '..' may climb
    at most `depth` levels, and no '..' may follow a name (the name could itself be a link, so a lexical
    check would not hold)."""
    if not target:
        return "symlink with an empty target"
    if "\x00" in target:
        return "NUL byte in the symlink target"
    if target.startswith("/"):
        return f"symlink to an absolute path ({target})"
    seen_name = False
    for part in target.split("/"):
        if part == "..":
            if seen_name:
                return f"symlink target has '..' after a name ({target})"
            depth -= 1
            if depth < 0:
                return f"symlink points outside the restore folder ({target})"
        elif part not in ("", "."):
            seen_name = True
    return None


def special_bits_message(mode: int) -> str | None:
    """The warning for a mode with setuid/setgid/sticky bits (restored without them), or None."""
    if not mode & SPECIAL_BITS:
        return None
    bits = "/".join(label for bit, label in _BIT_NAMES if mode & bit)
    return f"{bits} bit not restored (mode {mode:04o} -> {mode & 0o777:04o})"


class Selection:
    """--source NAME (top-level folders) and --path GLOB (fnmatch on member names; a glob that matches a
    folder selects everything below it). Empty lists select everything."""

    def __init__(self, sources=(), paths=()) -> None:
        self.sources = frozenset(sources)
        self._glob = re.compile("|".join(fnmatch.translate(p.strip("/")) for p in paths)) if paths else None
        self.everything = not self.sources and self._glob is None

    def __call__(self, parts: list[str]) -> bool:
        if self.everything:
            return True
        if self.sources and parts[0] not in self.sources:
            return False
        if self._glob is None:
            return True
        match = self._glob.match
        return any(match("/".join(parts[:end])) for end in range(len(parts), 0, -1))
