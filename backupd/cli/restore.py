"""backupctl restore and verify: extraction and verification happen here, in backupctl, with the rights
of whoever runs it (never in the sandboxed daemon). Imported only for these two verbs: the restore engine
(zstandard, the tar reader) costs start-up time the other verbs must not pay."""
from __future__ import annotations

import json
import os
import sys
import time

from backupd.client.call import Busy, NoAnswer, Request, socket_path as client_socket
from backupd.daemon import protocol as proto
from backupd.daemon.stream import StreamReader
from backupd.destinations.base import DestinationError
from backupd.restore import RestoreError, StoredBytes, extract_archive
from backupd.restore.decrypt import is_encrypted, open_decrypted
from backupd.util.units import human_size

from . import restore_origins as origins
from . import restore_sets as sets
from .ctl import (EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, USAGE, WaitProgress, fail,
                  report_remote_error, unreachable)
from .ctl_format import human_duration, printable

DEFAULT_SAMPLE = 100
REDRAW_EVERY = 0.25


class Usage(Exception):
    """A combination of options that cannot work (exit 2)."""


class LocalFailure(Exception):
    """Writing on this machine failed (not the daemon): exit 1, never 'daemon unreachable'."""


class SourceBroken(Exception):
    """Reading the archive's bytes failed midway (the daemon's stream, the file); `code` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def guarded(chunks, options: dict):
    """The chunks, with an OSError of their source (not of the extraction) made a SourceBroken."""
    try:
        yield from chunks
    except TimeoutError:
        raise SourceBroken(f"the daemon stopped sending the archive for {options['timeout']:g}s",
                           EXIT_UNREACHABLE) from None
    except OSError as exc:
        if options.get("archive") or options.get("config"):
            raise SourceBroken(f"cannot read the archive: {exc.strerror or exc}", EXIT_FAILED) from None
        raise SourceBroken(f"the connection to the daemon broke: {exc.strerror or exc}", EXIT_UNREACHABLE) from None


class TransferProgress(WaitProgress):
    """Bytes, rate and ETA of the archive read so far, redrawn in place on a terminal (nothing otherwise).
    Called from the decompression thread with the count of stored bytes read."""

    def __init__(self, verb: str, stream=sys.stderr) -> None:
        super().__init__(enabled=True, stream=stream)
        self.verb, self.total, self.name, self.started = verb, None, "", time.monotonic()

    def begin(self, info: dict) -> None:
        self.total, self.name, self.started = info.get("size"), printable(info.get("name", "")), time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self.tty or now - self.last_print < REDRAW_EVERY:
            return
        self.last_print = now
        rate = done / max(now - self.started, 1e-6)
        text = f"{self.verb} {self.name}: {human_size(done)}"
        if self.total:
            eta = human_duration(max(self.total - done, 0) / rate) if rate > 0 else "-"
            text += f" of {human_size(self.total)} ({100 * min(done, self.total) / self.total:.0f}%)"
        text += f", {human_size(rate)}/s" + (f", ETA {eta}" if self.total else "")
        self.stream.write("\r\033[K" + text[:self.columns() - 1])
        self.stream.flush()
        self.drawn = True


# -- what is done with the bytes ---------------------------------------------------------------------------------
def _plaintext(info: dict, stored: StoredBytes, options: dict):
    """The tar.zst stream: the stored bytes, decrypted first when the archive is encrypted (age authenticates
    every chunk; the recorded sha256 is of the stored file, checked all the same)."""
    if not is_encrypted(info["name"]):
        return stored
    if not options.get("identity"):
        raise RestoreError(f"{info['name']} is encrypted: give the age identity with --identity KEY")
    return open_decrypted(stored, options["identity"])


def stream_maker(options: dict):
    """stream_of(info, chunks) -> (the tar.zst stream, the StoredBytes it is read from)."""
    def stream_of(info: dict, chunks):
        digest = chunks.sha if isinstance(chunks, StreamReader) else None     # it hashes what it received
        stored = StoredBytes(guarded(chunks, options), digest)
        return _plaintext(info, stored, options), stored
    return stream_of


def restore_consumer(options: dict, progress: TransferProgress):
    def consume(info: dict, chunks):
        if sets.is_differential(info):
            try:
                return sets.restore_fetched(info, guarded(chunks, options), options, stream_maker(options), fetch,
                                            progress)
            except OSError as exc:
                raise LocalFailure(f"cannot restore into {options['to']}: {exc.strerror or exc}") from None
        progress.begin(info)
        stream, stored = stream_maker(options)(info, chunks)
        try:
            summary = extract_archive(stream, options["to"], expected_sha256=info["sha256"] or None,
                                      sources=options.get("sources", ()), paths=options.get("paths", ()),
                                      force=options.get("force", False), progress=progress, stored=stored)
        except OSError as exc:
            raise LocalFailure(f"cannot restore into {options['to']}: {exc.strerror or exc}") from None
        finally:
            progress.clear()
        return info, summary
    return consume


def verify_consumer(options: dict, progress: TransferProgress, config=None):
    def consume(info: dict, chunks):
        from backupd.jobs.locate import Located
        from backupd.jobs.verify import verify_chunks
        progress.begin(info)
        found = Located(info["name"], info.get("job") or "", info.get("run_id") or "", info["sha256"],
                        info.get("size"), (info.get("destination") or "",), base=info.get("base") or "",
                        base_sha256=info.get("base_sha256") or "")
        try:
            record = verify_chunks(found, info.get("destination") or "", guarded(chunks, options), config,
                                   sample=_sample(options), identity=options.get("identity"), progress=progress,
                                   bare=bool(options.get("archive")))
        finally:
            progress.clear()
        return record.to_dict()
    return consume


def _sample(options: dict) -> int:
    return (options.get("sample") or DEFAULT_SAMPLE) if options.get("against_source") else 0


# -- output ------------------------------------------------------------------------------------------------------
def show_restore(result, options: dict) -> int:
    info, summary = result
    refused = summary.refused
    if options["json"]:
        print(json.dumps({"backup": info, "to": os.path.abspath(options["to"]), **vars(summary)}, indent=2))
    else:
        for line in summary.warnings:
            print(f"warning: {printable(line)}", file=sys.stderr)
        for line in refused:
            print(f"refused: {printable(line)}", file=sys.stderr)
        over = f" over its full {printable(info['base'])}" if sets.is_differential(info) and info.get("base") else ""
        print(f"restored {printable(info['name'])}{over} from {printable(info['destination'])} into {options['to']}: "
              f"{summary.files} files, {summary.directories} folders, {summary.symlinks + summary.hardlinks} links, "
              f"{human_size(summary.bytes)} in {summary.seconds:.1f} s"
              + (f"; {len(refused)} members refused" if refused else ""))
    return EXIT_FAILED if refused else EXIT_OK


def show_verify(record: dict, options: dict) -> int:
    ok = record.get("status") == "success"
    if options["json"]:
        print(json.dumps(record, indent=2))
        return EXIT_OK if ok else EXIT_FAILED
    record = printable(record)
    where = f"{record.get('archive')} at {record.get('destination')}" + \
        (f" (a differential of {record['base']})" if record.get("base") else "")
    head = (f"ok: {where}: {record.get('members')} members, {human_size(record.get('bytes'))}" if ok else
            f"{'FAILED' if record.get('status') == 'failed' else 'could not verify'}: {where}")
    lines = [head] + [f"  {problem}" for problem in record.get("problems") or []]
    if record.get("problem_count", 0) > len(record.get("problems") or []):
        lines.append(f"  ... {record['problem_count'] - len(record['problems'])} more")
    source = record.get("against_source")
    if source:
        lines.append(f"against the live source: {source['sampled']} files sampled: {source['unchanged']} "
                     f"unchanged, {source['changed']} changed, {source['missing']} missing"
                     + (f" (not compared: {', '.join(source['not_compared'])})" if source["not_compared"] else ""))
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_FAILED


# -- the verbs ---------------------------------------------------------------------------------------------------
def check_usage(options: dict) -> None:
    command = options["command"]
    if bool(options.get("archive")) == bool(options.get("backup")):
        raise Usage(f"{command}: name the BACKUP, or give --archive FILE (not both)")
    if options.get("archive") and options.get("destination"):
        raise Usage(f"{command}: --destination does not go with --archive")
    if command == "restore" and not options.get("to"):
        raise Usage("restore: say where with --to DIR")
    if options.get("base") and not options.get("archive"):
        raise Usage("restore: --base goes with --archive (otherwise a differential's full is found by itself)")
    if options.get("sample") and not options.get("against_source"):
        raise Usage("verify: --sample goes with --against-source")
    if options.get("against_source") and options.get("archive") and not options.get("config"):
        raise Usage("verify: --against-source needs the configuration (--config FILE) to find the live source")


def fetch(options: dict, consume):
    """consume(info, chunks) run on the bytes got the way the options say (see restore_origins)."""
    if options.get("archive"):
        return origins.via_file(options, consume)
    if options.get("config"):
        return origins.via_config(options, consume)
    return origins.via_daemon(options, socket_path(options), consume)


def restore_file(options: dict, progress: TransferProgress):
    """--archive FILE: a full alone, or a differential with --base FULL_FILE (refused without it)."""
    if options.get("base"):
        try:
            return sets.restore_files(options, stream_maker(options), progress)
        except OSError as exc:
            raise LocalFailure(f"cannot restore into {options['to']}: {exc.strerror or exc}") from None
    if sets.is_differential({"name": os.path.basename(options["archive"])}):
        raise RestoreError(sets.needs_base(options, stream_maker(options)))
    return fetch(options, restore_consumer(options, progress))


def socket_path(options: dict) -> str:
    return client_socket(options["socket"])


def verify(options: dict, progress: TransferProgress) -> int:
    daemon_side = not (options.get("archive") or options.get("config") or options.get("identity"))
    if daemon_side:      # the daemon fetches and verifies; nothing leaves it but the report
        args = {"backup": options["backup"], "destination": options.get("destination"),
                "sample": _sample(options) or None}
        events = WaitProgress(enabled=sys.stderr.isatty())
        try:
            result = Request(socket_path(options), "verify", args, options["timeout"], events,
                             between_events=True).send()
        finally:
            events.clear()
        return show_verify(result, options)
    config = _config(options) if options.get("config") and options.get("against_source") else None
    return show_verify(fetch(options, verify_consumer(options, progress, config)), options)


def _config(options: dict):
    from backupd.config import ConfigError, load
    try:
        return load(options["config"])
    except ConfigError as exc:
        raise origins.OriginError("; ".join(f"{exc.path}: {error}" for error in exc.errors[:3])) from None


def run(options: dict) -> int:
    """backupctl restore / verify; the exit code."""
    command = options["command"]
    progress = TransferProgress("restoring" if command == "restore" else "verifying")
    try:
        check_usage(options)
        if command == "verify":
            return verify(options, progress)
        if options.get("archive"):
            return show_restore(restore_file(options, progress), options)
        return show_restore(fetch(options, restore_consumer(options, progress)), options)
    except Usage as exc:
        print(f"{USAGE}\nbackupctl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except proto.RemoteError as exc:          # the daemon said no (not permitted, not found), or failed midway
        return report_remote_error(exc, options["json"])
    except (RestoreError, LocalFailure, origins.OriginError, DestinationError) as exc:
        return fail(printable(str(exc)), EXIT_FAILED)
    except SourceBroken as exc:
        return fail(f"{exc}; nothing restored" if command == "restore" else str(exc), exc.code)
    except Busy as exc:
        return fail(f"the daemon is busy: {exc}; try again later", EXIT_UNREACHABLE)
    except NoAnswer as exc:
        return fail(f"the daemon {exc}", EXIT_UNREACHABLE)
    except proto.ProtocolError as exc:
        return fail(f"the daemon did not answer properly: {exc}; nothing restored", EXIT_UNREACHABLE)
    except OSError as exc:
        return unreachable(socket_path(options), exc)
    except KeyboardInterrupt:
        return fail("interrupted; nothing restored", 130)
