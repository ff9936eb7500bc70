"""RFC 2637 section 4.1: enhanced GRE (version 1) carrying PPP for PPTP.

Header: flags+version (2), protocol 0x880B (2), Key = payload length (2) +
call id (2), [sequence (4) if S], [acknowledgment (4) if A], payload.

Flag word, most significant bit first: C R K S s Recur(3) A Flags(4) Ver(3).
Version 1 requires K=1 and C=R=s=Recur=Flags=0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .errors import (
    BadGreFlags,
    BadPayloadLength,
    GreError,
    GreFieldOutOfRange,
    NotEnhancedGre,
    TruncatedGre,
)

__all__ = [
    "BASE_HEADER_LEN",
    "IP_PROTO_GRE",
    "PPTP_GRE_PROTOCOL",
    "BadGreFlags",
    "BadPayloadLength",
    "EnhancedGre",
    "GreError",
    "GreFieldOutOfRange",
    "NotEnhancedGre",
    "TruncatedGre",
    "build_gre",
    "parse_gre",
    "peek_call_id",
    "with_call_id",
]

PPTP_GRE_PROTOCOL: Final = 0x880B
IP_PROTO_GRE: Final = 47
GRE_VERSION: Final = 1
BASE_HEADER_LEN: Final = 8

_FLAG_C: Final = 0x8000
_FLAG_R: Final = 0x4000
_FLAG_K: Final = 0x2000
_FLAG_S: Final = 0x1000
_FLAG_STRICT_ROUTE: Final = 0x0800
_RECUR_MASK: Final = 0x0700
_FLAG_A: Final = 0x0080
_RESERVED_FLAGS_MASK: Final = 0x0078
_VERSION_MASK: Final = 0x0007
# Everything that must be zero in version 1.
_MUST_BE_ZERO: Final = _FLAG_C | _FLAG_R | _FLAG_STRICT_ROUTE | _RECUR_MASK | _RESERVED_FLAGS_MASK

_BASE = struct.Struct("!HHHH")  # flags+version, protocol, payload length, call id
_U32 = struct.Struct("!I")


@dataclass(frozen=True)
class EnhancedGre:
    """One enhanced GRE packet; payload length is len(payload)."""

    call_id: int
    payload: bytes = b""
    sequence: int | None = None
    ack: int | None = None


def _check_base(data: bytes) -> int:
    """Validate the fixed 8-byte part; return the flag word."""
    if len(data) < BASE_HEADER_LEN:
        raise TruncatedGre(f"need {BASE_HEADER_LEN} header bytes, got {len(data)}")
    flags, protocol, _, _ = _BASE.unpack_from(data)
    version = flags & _VERSION_MASK
    if version != GRE_VERSION:
        raise NotEnhancedGre(f"GRE version {version}, expected {GRE_VERSION}")
    if protocol != PPTP_GRE_PROTOCOL:
        raise NotEnhancedGre(f"protocol {protocol:#06x}, expected {PPTP_GRE_PROTOCOL:#06x}")
    if not flags & _FLAG_K:
        raise BadGreFlags("key (K) bit clear; version 1 requires it")
    if flags & _MUST_BE_ZERO:
        raise BadGreFlags(f"flags {flags:#06x} set bits that must be zero (C, R, s, Recur, Flags)")
    return flags


def parse_gre(data: bytes) -> EnhancedGre:
    """Decode one enhanced GRE packet (the IP payload)."""
    data = bytes(data)
    flags = _check_base(data)
    _, _, payload_length, call_id = _BASE.unpack_from(data)
    offset = BASE_HEADER_LEN
    sequence = ack = None
    header_len = offset + 4 * bool(flags & _FLAG_S) + 4 * bool(flags & _FLAG_A)
    if len(data) < header_len:
        raise TruncatedGre(f"need {header_len} header bytes, got {len(data)}")
    if flags & _FLAG_S:
        (sequence,) = _U32.unpack_from(data, offset)
        offset += 4
    if flags & _FLAG_A:
        (ack,) = _U32.unpack_from(data, offset)
        offset += 4
    available = len(data) - offset
    if available < payload_length:
        raise TruncatedGre(f"payload length {payload_length}, only {available} bytes follow")
    if available > payload_length:
        raise BadPayloadLength(f"payload length {payload_length}, but {available} bytes follow")
    return EnhancedGre(call_id, data[offset:], sequence, ack)


def _check_uint(name: str, value: object, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise GreFieldOutOfRange(f"{name}: {value!r} is not in 0..{(1 << bits) - 1}")


def build_gre(g: EnhancedGre) -> bytes:
    """Encode an enhanced GRE packet (header and payload)."""
    _check_uint("call_id", g.call_id, 16)
    if not isinstance(g.payload, bytes | bytearray):
        raise GreFieldOutOfRange(f"payload: expected bytes, got {type(g.payload).__name__}")
    if len(g.payload) > 0xFFFF:
        raise BadPayloadLength(f"payload of {len(g.payload)} bytes does not fit 16 bits")
    flags = _FLAG_K | GRE_VERSION
    tail = b""
    if g.sequence is not None:
        _check_uint("sequence", g.sequence, 32)
        flags |= _FLAG_S
        tail += _U32.pack(g.sequence)
    if g.ack is not None:
        _check_uint("ack", g.ack, 32)
        flags |= _FLAG_A
        tail += _U32.pack(g.ack)
    header = _BASE.pack(flags, PPTP_GRE_PROTOCOL, len(g.payload), g.call_id)
    return header + tail + bytes(g.payload)


def peek_call_id(data: bytes) -> int:
    """Call ID from the Key field, validating only the fixed 8-byte header."""
    _check_base(data)
    return int.from_bytes(data[6:8], "big")


def with_call_id(data: bytes, call_id: int) -> bytes:
    """The packet with the Key's call-id half replaced; everything else as is."""
    _check_base(data)
    _check_uint("call_id", call_id, 16)
    return bytes(data[:6]) + call_id.to_bytes(2, "big") + bytes(data[8:])
