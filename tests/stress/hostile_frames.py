"""Hypothesis strategies for hostile control-socket frames: wrong types, deep nesting, huge integers, lone
surrogates, bytes that are not UTF-8 or not JSON, JSON that is not an object, and frames whose length header
lies (truncated, oversized, zero, shorter than the body), each as the exact bytes a client sends."""
from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import strategies as st

from backupd.daemon import protocol as proto

COMMANDS = ("status", "history", "list", "trigger", "reload", "ping", "fetch", "restore", "verify", "prune",
            "shutdown", "", "STATUS", "status\0")
ARG_NAMES = ("job", "limit", "wait", "upload_pending", "destination", "backup", "sample", "run_id", "offset")

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
args = st.dictionaries(st.sampled_from(ARG_NAMES) | st.text(max_size=12), values, max_size=4)
requests = st.fixed_dictionaries(
    {"id": st.text(max_size=16) | values, "command": st.sampled_from(COMMANDS) | values},
    optional={"args": args | values, "extra": values})


def _json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def deep(draw) -> bytes:
    depth = draw(st.integers(min_value=proto.MAX_DEPTH - 2, max_value=20_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = (opener * depth + "1" + closer * depth).encode()
    return b'{"id": "d", "command": "status", "args": {"job": ' + nested + b"}}"


@st.composite
def huge_int(draw) -> bytes:
    digits = draw(st.integers(min_value=4000, max_value=200_000))
    where = draw(st.sampled_from(["limit", "id"]))
    number = b"9" * digits
    if where == "id":
        return b'{"id": ' + number + b', "command": "status"}'
    return b'{"id": "h", "command": "history", "args": {"limit": ' + number + b"}}"


@st.composite
def surrogate(draw) -> bytes:
    escape = draw(st.sampled_from(["\\udc80", "\\ud800", "\\udfff\\ud800", "\\u0000"]))
    field = draw(st.sampled_from(['"id": "%s", "command": "status"', '"id": "s", "command": "%s"',
                                  '"id": "s", "command": "history", "args": {"job": "%s"}',
                                  '"id": "s", "command": "list", "args": {"%s": 1}']))
    return ("{" + field % escape + "}").encode()


@st.composite
def not_utf8(draw) -> bytes:
    body = bytearray(draw(requests.map(_json)))
    at = draw(st.integers(min_value=0, max_value=len(body)))
    body[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]))
    return bytes(body)


bodies = st.one_of(
    requests.map(_json),                                    # wrong types, unknown commands and keys
    values.map(_json),                                      # JSON that is not an object, or not a request
    deep(), huge_int(), surrogate(), not_utf8(),
    st.binary(max_size=300),                                # not JSON at all
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@dataclass(frozen=True)
class Frame:
    """What a hostile client sends (then it closes its side); shown short in a failure report."""

    how: str            # how the length header lies
    data: bytes

    def __repr__(self) -> str:
        return f"Frame({self.how!r}, {len(self.data)} bytes: {self.data[:120]!r}...)"


@st.composite
def frames(draw) -> Frame:
    body = draw(bodies)
    how = draw(st.sampled_from(["exact", "exact", "exact", "truncated", "header only", "oversized", "zero",
                                "short header", "trailing bytes"]))
    size = {"truncated": len(body) + draw(st.integers(1, 1 << 16)),
            "oversized": draw(st.sampled_from([proto.MAX_REQUEST + 1, 1 << 31, (1 << 32) - 1])),
            "zero": 0, "short header": len(body), "header only": len(body) or 1}.get(how, len(body))
    header = size.to_bytes(proto.HEADER_SIZE, "big")
    sent = {"header only": header, "short header": header[:draw(st.integers(1, 3))], "zero": header,
            "trailing bytes": header + body + draw(st.binary(min_size=1, max_size=64))}.get(how, header + body)
    return Frame(how, sent)
