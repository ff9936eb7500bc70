"""Fast OpenFlow 1.3 encoding of the messages the ALG sends, and parsing of packet-ins.

Ryu's ``MsgBase.serialize`` is general and slow: it converts every match value
from text through netaddr and packs field by field. The ALG sends the same few
shapes thousands of times a second (flow-mods with OXM matches and
apply-actions, packet-outs, barriers), so ``encode`` packs those with
precompiled structs and caches address conversions. The result is byte for byte
what Ryu produces (the unit suite checks every message the gateway emits); any
message, action, instruction or value outside those shapes is handed to Ryu.

Packet-ins go the other way thousands of times a second too, and Ryu parses
each one's match through its general OXM code (about 10 µs, most of it for a
match that is the same few bytes on every packet-in from a port).
``parse_packet_in`` makes the same ``OFPPacketIn`` in a fifth of that: it
parses each distinct match once and shares the parsed ``OFPMatch`` between the
packet-ins that carry those bytes (read it, do not change it, as Ryu apps do).
``use_fast_packet_in_parser`` puts it in Ryu's parser table.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from socket import inet_aton, inet_ntoa
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser
from ryu.ofproto.oxm_fields import OpenFlowBasic

_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct(ofp.OFP_FLOW_MOD_PACK_STR0)  # after the header, before the match
_PACKET_OUT = struct.Struct(ofp.OFP_PACKET_OUT_PACK_STR)
_MATCH_HEADER = struct.Struct("!HH")
_OXM_HEADER = struct.Struct("!I")
_ACTION_OUTPUT = struct.Struct(ofp.OFP_ACTION_OUTPUT_PACK_STR)
_ACTION_HEADER = struct.Struct(ofp.OFP_ACTION_HEADER_PACK_STR)
_INSTRUCTION_ACTIONS = struct.Struct(ofp.OFP_INSTRUCTION_ACTIONS_PACK_STR)
_INSTRUCTION_GOTO = struct.Struct(ofp.OFP_INSTRUCTION_GOTO_TABLE_PACK_STR)
_INSTRUCTION_METER = struct.Struct(ofp.OFP_INSTRUCTION_METER_PACK_STR)
_SET_FIELD_HEADER = struct.Struct("!HH")
_VERSION = ofp.OFP_VERSION
_PAD = bytes(8)
_CACHE_LIMIT = 1024  # entries per cache
# After the header: buffer_id, total_len, reason, table_id, cookie; then the match's
# type and length.
_PACKET_IN = struct.Struct("!IHBBQHH")
_PACKET_IN_MATCH = ofp.OFP_PACKET_IN_SIZE - ofp.OFP_MATCH_SIZE  # where the match starts

# OpenFlow basic OXM fields by name: (field number, value size, Ryu's converter or None
# for plain integers).
_FIELDS: dict[str, tuple[int, int, Any]] = {
    t.name: (t.num, t.type.size, None if type(t.type).__name__ == "IntDescr" else t.type)
    for t in ofp.oxm_types if isinstance(t, OpenFlowBasic)
}
_UNTOUCHED_WILDCARDS = parser.FlowWildcards().__dict__  # a match made with the new API


class _Unsupported(Exception):
    """Not a shape this module packs: Ryu serialises the message."""


def encode(msg: Any, datapath: Any = None) -> bytes:
    """The wire bytes of ``msg`` (its ``xid`` must be set). ``datapath`` is only needed
    for messages Ryu serialises (``msg.datapath`` is used when it is None)."""
    try:
        kind = type(msg)
        if kind is parser.OFPFlowMod:
            return _flow_mod(msg)
        if kind is parser.OFPPacketOut:
            return _packet_out(msg)
        if kind is parser.OFPBarrierRequest:
            return _HEADER.pack(_VERSION, ofp.OFPT_BARRIER_REQUEST, ofp.OFP_HEADER_SIZE,
                                msg.xid)
    except (_Unsupported, struct.error, OverflowError, TypeError, ValueError, KeyError):
        pass
    return ryu_encode(msg, datapath)


def ryu_encode(msg: Any, datapath: Any = None) -> bytes:
    """Ryu's own serialisation (the reference ``encode`` must equal)."""
    if datapath is not None:
        msg.datapath = datapath
    msg.serialize()
    return bytes(msg.buf)


def _flow_mod(msg: Any) -> bytes:
    body = _FLOW_MOD.pack(msg.cookie, msg.cookie_mask, msg.table_id, msg.command,
                          msg.idle_timeout, msg.hard_timeout, msg.priority, msg.buffer_id,
                          msg.out_port, msg.out_group, msg.flags)
    parts = [b"", body, _match(msg.match)]
    for instruction in msg.instructions:
        parts.append(_instruction(instruction))
    length = ofp.OFP_HEADER_SIZE + sum(map(len, parts))
    parts[0] = _HEADER.pack(_VERSION, ofp.OFPT_FLOW_MOD, length, msg.xid)
    return b"".join(parts)


def _packet_out(msg: Any) -> bytes:
    if msg.buffer_id != ofp.OFP_NO_BUFFER and msg.data:
        raise _Unsupported("buffered packet-out with data")
    actions = b"".join(map(_action, msg.actions))
    data = msg.data or b""
    length = ofp.OFP_HEADER_SIZE + _PACKET_OUT.size + len(actions) + len(data)
    return b"".join((_HEADER.pack(_VERSION, ofp.OFPT_PACKET_OUT, length, msg.xid),
                     _PACKET_OUT.pack(msg.buffer_id, msg.in_port, len(actions)), actions,
                     bytes(data)))


def _match(match: Any) -> bytes:
    if type(match) is not parser.OFPMatch or (match.fields and not match._fields2) \
            or match._wc.__dict__ != _UNTOUCHED_WILDCARDS:
        raise _Unsupported("match built with Ryu's old API")
    return _encoded_match(tuple(match._fields2))


# Encoded matches and set-field actions by value: the same few recur in every flow-mod.
@lru_cache(maxsize=_CACHE_LIMIT)
def _encoded_match(fields: tuple[tuple[str, Any], ...]) -> bytes:
    oxms = b"".join([_oxm(name, value) for name, value in fields])
    length = _MATCH_HEADER.size + len(oxms)
    return _MATCH_HEADER.pack(ofp.OFPMT_OXM, length) + oxms + _PAD[:-length % 8]


@lru_cache(maxsize=_CACHE_LIMIT)
def _encoded_set_field(name: str, value: Any) -> bytes:
    oxm = _oxm(name, value)
    length = -(-(_SET_FIELD_HEADER.size + len(oxm)) // 8) * 8
    return _SET_FIELD_HEADER.pack(ofp.OFPAT_SET_FIELD, length) + oxm \
        + _PAD[:length - _SET_FIELD_HEADER.size - len(oxm)]


def _oxm(name: str, value: Any) -> bytes:
    number, size, converter = _FIELDS[name]
    mask = None
    if isinstance(value, tuple):
        value, mask = value
    raw = _value(name, value, size, converter)
    if mask is None:
        return _OXM_HEADER.pack(number << 9 | size) + raw
    return _OXM_HEADER.pack(number << 9 | 1 << 8 | size * 2) + raw \
        + _value(name, mask, size, converter)


def _value(name: str, value: Any, size: int, converter: Any) -> bytes:
    if converter is None:
        if type(value) is not int or value < 0:
            raise _Unsupported(f"{name}: {value!r}")
        return value.to_bytes(size, "big")
    raw = _canonical(value, size)
    return raw if raw is not None else converter.from_user(value)


def _canonical(text: Any, size: int) -> bytes | None:
    """Canonical dotted-quad IPv4 or colon-separated MAC text, converted in C; None for
    anything else (Ryu converts it). Canonical means it survives the round trip."""
    if type(text) is not str:
        return None
    if size == 4:
        try:
            raw = inet_aton(text)
        except OSError:
            return None
        return raw if inet_ntoa(raw) == text else None
    if size == 6 and len(text) == 17:
        try:
            raw = bytes.fromhex(text.replace(":", ""))
        except ValueError:
            return None
        return raw if len(raw) == 6 and raw.hex(":") == text.lower() else None
    return None


def _instruction(instruction: Any) -> bytes:
    kind = type(instruction)
    if kind is parser.OFPInstructionActions:
        actions = b"".join(map(_action, instruction.actions))
        return _INSTRUCTION_ACTIONS.pack(instruction.type, _INSTRUCTION_ACTIONS.size
                                         + len(actions)) + actions
    if kind is parser.OFPInstructionGotoTable:
        return _INSTRUCTION_GOTO.pack(ofp.OFPIT_GOTO_TABLE, _INSTRUCTION_GOTO.size,
                                      instruction.table_id)
    if kind is parser.OFPInstructionMeter:  # every flow to the controller, when metered
        return _INSTRUCTION_METER.pack(ofp.OFPIT_METER, _INSTRUCTION_METER.size,
                                       instruction.meter_id)
    raise _Unsupported(kind.__name__)


def _action(action: Any) -> bytes:
    kind = type(action)
    if kind is parser.OFPActionOutput:
        return _ACTION_OUTPUT.pack(ofp.OFPAT_OUTPUT, _ACTION_OUTPUT.size, action.port,
                                   action.max_len)
    if kind is parser.OFPActionSetField:
        if action._composed_with_old_api():
            raise _Unsupported("set-field built with the old API")
        return _encoded_set_field(action.key, action.value)
    if kind is parser.OFPActionDecNwTtl:
        return _ACTION_HEADER.pack(ofp.OFPAT_DEC_NW_TTL, _ACTION_HEADER.size)
    raise _Unsupported(kind.__name__)


_matches: dict[bytes, Any] = {}  # parsed packet-in matches by their wire bytes


def parse_packet_in(datapath: Any, version: int, msg_type: int, msg_len: int, xid: int,
                    buf: bytes | bytearray) -> Any:
    """Ryu's ``OFPPacketIn.parser``, faster: the same message, attribute for attribute,
    with its match shared between packet-ins that carry the same match bytes."""
    buffer_id, total_len, reason, table_id, cookie, match_type, match_len = \
        _PACKET_IN.unpack_from(buf, ofp.OFP_HEADER_SIZE)
    match_end = _PACKET_IN_MATCH + match_len
    if match_type != ofp.OFPMT_OXM or match_len < _MATCH_HEADER.size or match_end > len(buf):
        # Not what switches send: Ryu's parser makes of it what it always has.
        return parser.OFPPacketIn.parser(datapath, version, msg_type, msg_len, xid, buf)
    buf = bytes(buf)
    key = buf[_PACKET_IN_MATCH:match_end]
    match = _matches.get(key)
    if match is None:
        match = parser.OFPMatch.parser(buf, _PACKET_IN_MATCH)
        if len(_matches) < _CACHE_LIMIT:
            _matches[key] = match
    data = buf[match_end + -match_len % 8 + 2:]
    if total_len < len(data):  # padding to 8 bytes after the frame
        data = data[:total_len]
    msg = object.__new__(parser.OFPPacketIn)
    msg.__dict__.update(datapath=datapath, version=version, msg_type=msg_type,
                        msg_len=msg_len, xid=xid, buf=buf, buffer_id=buffer_id,
                        total_len=total_len, reason=reason, table_id=table_id,
                        cookie=cookie, match=match, data=data)
    return msg


def use_fast_packet_in_parser() -> None:
    """Parse OpenFlow 1.3 packet-ins with ``parse_packet_in`` from now on."""
    parser._MSG_PARSERS[ofp.OFPT_PACKET_IN] = parse_packet_in


def use_ryu_packet_in_parser() -> None:
    parser._MSG_PARSERS[ofp.OFPT_PACKET_IN] = parser.OFPPacketIn.parser
