"""`encrypt_to`: the public keys an archive is encrypted to, checked when the configuration is read.

Three kinds, as the age tool takes them: X25519 (`age1...`, bech32), `ssh-ed25519 AAAA...` and
`ssh-rsa AAAA...` (at least 2048 bits, as age requires). Secret keys are refused without being repeated:
identities never go into the daemon's configuration.
"""
from __future__ import annotations

import base64
import binascii
import struct

from .fields import FieldError, shown, string_list

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
MIN_RSA_BITS = 2048
_SECRET_MARKS = ("AGE-SECRET-KEY-", "PRIVATE KEY")
KINDS = "an age public key (age1...), 'ssh-ed25519 AAAA...' or 'ssh-rsa AAAA...'"


def _polymod(values) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            check ^= generator if (top >> bit) & 1 else 0
    return check


def bech32_payload(text: str) -> bytes:
    """The bytes of a bech32 string `hrp1data`; FieldError if its characters or checksum are wrong."""
    hrp, _, data = text.rpartition("1")
    if text != text.lower() or any(c not in _BECH32 for c in data) or len(data) < 6:
        raise FieldError("has characters bech32 does not use")
    values = [_BECH32.index(c) for c in data]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if _polymod(expanded + values) != 1:
        raise FieldError("has a wrong checksum (a typing or copying mistake)")
    bits, count, out = 0, 0, bytearray()
    for value in values[:-6]:
        bits, count = bits << 5 | value, count + 5
        if count >= 8:
            count -= 8
            out.append(bits >> count & 0xFF)
    return bytes(out)


def _age(text: str) -> str:
    if text.rpartition("1")[0] != "age":
        raise FieldError("is an age plugin recipient; only X25519 keys (age1...) are supported")
    if len(bech32_payload(text)) != 32:
        raise FieldError("does not hold a 32-byte X25519 key")
    return text


def _ssh_fields(blob: bytes) -> list[bytes]:
    """The length-prefixed strings of an ssh public key blob."""
    out, pos = [], 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            raise FieldError("has a damaged key (cut short)")
        (size,) = struct.unpack_from(">I", blob, pos)
        if pos + 4 + size > len(blob):
            raise FieldError("has a damaged key (cut short)")
        out.append(blob[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


def _ssh(text: str) -> str:
    kind, _, rest = text.partition(" ")
    encoded = rest.split()[0] if rest.split() else ""
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise FieldError("has a key that is not base64") from None
    parts = _ssh_fields(blob)
    if not parts or parts[0] != kind.encode():
        raise FieldError(f"holds a key of another type than '{kind}'")
    if kind == "ssh-ed25519" and (len(parts) != 2 or len(parts[1]) != 32):
        raise FieldError("does not hold a 32-byte ed25519 key")
    if kind == "ssh-rsa":
        if len(parts) != 3:
            raise FieldError("has a damaged RSA key")
        bits = int.from_bytes(parts[2], "big").bit_length()
        if bits < MIN_RSA_BITS:
            raise FieldError(f"is a {bits}-bit RSA key; age needs at least {MIN_RSA_BITS} bits")
    return f"{kind} {encoded}"      # the comment is dropped


_PARSERS = {"age1": _age, "ssh-ed25519 ": _ssh, "ssh-rsa ": _ssh}


class SecretKeyGiven(FieldError):
    """A secret key where a public one belongs: the message never repeats it."""


def recipient(value: str) -> str:
    """One recipient, normalised (surrounding space and an ssh key's comment dropped); FieldError says
    what is wrong with it (to follow the value in a message)."""
    if any(mark in value for mark in _SECRET_MARKS):
        raise SecretKeyGiven("is a secret key, not a recipient: give its public key (age-keygen -y FILE, "
                             "ssh-keygen -y -f FILE); identities never go into the configuration")
    text = value.strip()
    for prefix, parse in _PARSERS.items():
        if text.startswith(prefix):
            return parse(text)
    raise FieldError(f"is not {KINDS}")


def recipients(value) -> tuple[str, ...]:
    """A list of recipients; the first bad one is named by its index (and shown, unless it is a secret)."""
    out = []
    for index, item in enumerate(string_list(value)):
        try:
            out.append(recipient(item))
        except SecretKeyGiven as exc:
            raise FieldError(f"[{index}] {exc}") from None
        except FieldError as exc:
            raise FieldError(f"[{index}] {shown(item)} {exc}") from None
    return tuple(out)
