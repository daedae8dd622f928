"""Which backup a BACKUP argument names, and where to fetch it: the audit trail first, the destinations'
own listings when the trail does not know it (a rebuilt machine, a lost state directory).

BACKUP is a run id or its prefix of at least 8 characters, an archive name, `latest` (of the only job that
has backups) or `latest:JOB`. Destinations are tried in order: the one asked for, else every one that holds
the backup, local ones before remote ones."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from ..config import Config
from ..destinations import registry
from ..destinations.base import DestinationError, ErrorKind
from ..util.names import ARCHIVE_SUFFIX, DIFFERENTIAL, base_run_of, kind_of
from .result import DestinationStatus, RunRecord

MIN_PREFIX = 8
_RUN_ID = re.compile(r"[0-9a-f]{1,32}")


class LocateError(Exception):
    """The backup is not known, ambiguous, or no destination could give it; the message is one line."""


@dataclass(frozen=True)
class Located:
    """A backup and the destinations to try, in order; sha256 and size as recorded ("" / None: unknown)."""

    name: str
    job: str
    run_id: str
    sha256: str
    size: int | None
    destinations: tuple[str, ...]
    created: str = ""
    base: str = ""              # a differential's full: its archive name ("" for a full, or not found)
    base_sha256: str = ""
    base_size: int | None = None

    @property
    def kind(self) -> str:
        return kind_of(self.name)

    def to_dict(self) -> dict:
        found = {"name": self.name, "job": self.job, "run_id": self.run_id, "sha256": self.sha256,
                 "size": self.size, "created": self.created, "kind": self.kind}
        if self.kind == DIFFERENTIAL:
            found.update(base=self.base, base_sha256=self.base_sha256, base_size=self.base_size)
        return found


@dataclass(frozen=True)
class Spec:
    kind: str           # latest | name | run
    value: str          # the job (latest; "" for any), the archive name, or the run id (prefix)


def parse_spec(text: str) -> Spec:
    if text == "latest" or text.startswith("latest:"):
        return Spec("latest", text.partition(":")[2])
    if ARCHIVE_SUFFIX in text:
        return Spec("name", text)
    if _RUN_ID.fullmatch(text.lower()):
        return Spec("run", text.lower())
    raise LocateError(f"{text!r} is not a backup: give a run id (or its first {MIN_PREFIX} characters), an "
                      "archive name, latest or latest:JOB")


def _matches(spec: Spec, name: str, job: str, run_id: str) -> bool:
    if spec.kind == "latest":
        return spec.value in ("", job)
    if spec.kind == "name":
        return name == spec.value
    return run_id.startswith(spec.value)


def _ordered(config: Config, names) -> tuple[str, ...]:
    """Configured destinations among `names`, local ones first (a disk is faster than a download)."""
    present = [name for name in dict.fromkeys(names) if name in config.destinations]
    return tuple(sorted(present, key=lambda name: config.destinations[name].type != "local"))


def _from_history(spec: Spec, records: list[RunRecord], config: Config) -> list[Located]:
    found = []
    for record in records:
        archive = record.archive
        if archive is None or not _matches(spec, archive.name, record.job, record.run_id):
            continue
        held = [d.name for d in record.destinations if d.status == DestinationStatus.SUCCESS]
        if held:
            found.append(Located(archive.name, record.job, record.run_id, archive.sha256, archive.size,
                                 _ordered(config, held), created=record.started.isoformat(), base=archive.base,
                                 base_sha256=archive.base_sha256, base_size=archive.base_size or None))
    return found


def _from_listings(spec: Spec, config: Config, listings: Iterator[tuple[str, list]]) -> list[Located]:
    merged: dict[str, Located] = {}
    for destination, backups in listings:
        for item in backups:
            if not _matches(spec, item.name, item.job, item.run_id):
                continue
            known = merged.get(item.name)
            held = (known.destinations if known else ()) + (destination,)
            base = known if known and known.base else full_listed(item, backups)
            merged[item.name] = Located(item.name, item.job, item.run_id, item.sha256, item.size or None,
                                        _ordered(config, held), created=item.created, base=base.base,
                                        base_sha256=base.base_sha256, base_size=base.base_size)
    return sorted(merged.values(), key=lambda found: (found.created, found.name), reverse=True)


@dataclass(frozen=True)
class _Base:
    base: str = ""
    base_sha256: str = ""
    base_size: int | None = None


def full_listed(item, backups: list) -> _Base:
    """A listed differential's full, as the same listing shows it: of the same job, its run id starting
    with the differential's base run id (an empty _Base for a full, or a full not listed there)."""
    base_run = base_run_of(item.name)
    if base_run is None:
        return _Base()
    for other in backups:
        if other.job == item.job and other.run_id.startswith(base_run) and kind_of(other.name) != DIFFERENTIAL:
            return _Base(other.name, other.sha256, other.size or None)
    return _Base()


def _choose(spec: Spec, text: str, found: list[Located]) -> Located:
    if spec.kind == "latest":
        jobs = sorted({item.job for item in found})
        if len(jobs) > 1 and not spec.value:
            raise LocateError(f"latest is ambiguous: {len(jobs)} jobs have backups ({', '.join(jobs)}); "
                              "say latest:JOB")
        return found[0]
    names = sorted({item.name for item in found})
    if len(names) > 1:
        raise LocateError(f"{text!r} names {len(names)} backups ({', '.join(names[:5])}); give more of the run id")
    return found[0]


def listings(config: Config, state_dir, only: str | None = None) -> Iterator[tuple[str, list]]:
    """(destination, its backups) for each destination (local first) that answers; the others are skipped."""
    for name in _ordered(config, [only] if only else config.destinations):
        destination = registry.build(config.destinations[name], state_dir)
        try:
            yield name, destination.list()
        except DestinationError:
            continue
        finally:
            destination.close()


def locate(text: str, config: Config, records: list[RunRecord] | None,
           list_all: Callable[[], Iterator[tuple[str, list]]], destination: str | None = None) -> Located:
    """The backup `text` names (see the module's docstring). `records`: the trail's runs, newest first
    (None without a trail); `list_all()`: the destinations' listings, asked only if the trail has nothing."""
    spec = parse_spec(text)
    if spec.kind == "run" and len(spec.value) < MIN_PREFIX:
        raise LocateError(f"a run id prefix needs at least {MIN_PREFIX} characters, not {text!r}")
    if destination is not None and destination not in config.destinations:
        raise LocateError(f"no destination named {destination!r}; destinations: "
                          f"{', '.join(config.destinations) or 'none'}")
    if spec.kind == "latest" and spec.value and spec.value not in config.jobs:
        raise LocateError(f"no job named {spec.value!r}; jobs: {', '.join(config.jobs) or 'none'}")
    found = _from_history(spec, records or [], config) or _from_listings(spec, config, list_all())
    if destination is not None:     # what the trail says it holds first; it may hold others (copied there)
        found = [_at(item, destination) for item in
                 ([item for item in found if destination in item.destinations] or found)]
    if not found:
        where = f" at destination {destination!r}" if destination else ""
        raise LocateError(f"no backup {text!r} found in the history or{where} at the destinations")
    return _choose(spec, text, found)


def _at(found: Located, destination: str) -> Located:
    return replace(found, destinations=(destination,))


class Fetched:
    """An open download of a located backup from one destination: iterate `chunks`, then close()."""

    def __init__(self, destination, name: str, chunks: Iterator[bytes]) -> None:
        self.destination, self.name, self.chunks = destination, name, chunks

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        self.destination.close()


def open_fetch(found: Located, config: Config, state_dir, cancel=None) -> Fetched:
    """Start the download from the first destination in `found.destinations` that has the backup."""
    errors = []
    for name in found.destinations:
        destination = registry.build(config.destinations[name], state_dir, cancel)
        try:
            return Fetched(destination, name, destination.fetch_stream(found.name))
        except DestinationError as exc:
            destination.close()
            errors.append(f"{name}: {'not there' if exc.kind == ErrorKind.NOT_FOUND else exc}")
    raise LocateError(f"no destination could give {found.name} ({'; '.join(errors) or 'none holds it'})")
