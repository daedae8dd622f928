"""What a control command's handler is given and may raise, and the checks every request's arguments pass first."""
from __future__ import annotations

from typing import Callable

from .peers import Peer


class CommandError(Exception):
    """A handler's operation failed; the client gets ok: false with this message."""

    def __init__(self, message: str, details: dict | None = None, code: str = "failed") -> None:
        super().__init__(message)
        self.message, self.details, self.code = message, details, code


class ClientGone(Exception):
    """The client closed its connection while a handler was emitting events."""


Emit = Callable[[dict], None]
Handler = Callable[[dict, Peer, Emit], dict]


class Streamed(dict):
    """A handler's result that a binary stream follows (stream mode, see protocol.py): the server sends the
    reply, then send(conn); close() runs in every case, also when the client went away first."""

    def __init__(self, result: dict, send: Callable[[object], None], close: Callable[[], None]) -> None:
        super().__init__(result)
        self.send, self.close = send, close


def stream_after(reply: dict, conn) -> None:
    """Send the stream of a Streamed result whose reply went out."""
    result = reply.get("result")
    if reply.get("ok") and isinstance(result, Streamed):
        result.send(conn)


def close_stream(reply: dict | None) -> None:
    result = (reply or {}).get("result")
    if isinstance(result, Streamed):
        result.close()


def check_args(args: dict, spec: dict[str, tuple[tuple, object]]) -> dict:
    """Validate args against {name: (allowed types, default)}; return them with defaults filled in."""
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise CommandError(f"unknown argument {unknown[0]!r}; expected one of {sorted(spec)}", code="bad_args")
    checked = {}
    for name, (kinds, default) in spec.items():
        value = args.get(name, default)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise CommandError(f"argument {name!r} must be {names}, got {type(value).__name__}", code="bad_args")
        checked[name] = value
    return checked


# Every request argument the commands read -> the JSON types it may hold; checked before any handler runs.
ARG_TYPES: dict[str, tuple[type, ...]] = {
    "job": (str, type(None)),
    "destination": (str, type(None)),
    "limit": (int, type(None)),
    "wait": (bool, type(None)),
    "upload_pending": (bool, type(None)),
    "full": (bool, type(None)),
}
_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null",
               list: "an array", dict: "an object"}


def check_arg_types(args: dict, table: dict[str, tuple[type, ...]] = ARG_TYPES) -> None:
    """CommandError (code bad_args) naming the first argument whose JSON type the table does not allow."""
    for name, kinds in table.items():
        value = args.get(name)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            allowed = " or ".join(_JSON_NAMES[kind] for kind in kinds)
            raise CommandError(f"argument {name!r} must be {allowed}, not {_JSON_NAMES.get(type(value), 'that')}",
                               code="bad_args")
