"""A simulated OpenFlow 1.3 switch (cbench-like) for control-plane benchmarks.

An asyncio protocol that connects to a controller, completes the handshake
(HELLO, FEATURES, port description, GET_CONFIG, ...), answers ECHO and BARRIER
requests in order, keeps a model of the flow table the controller builds and
hands every PACKET_OUT and FLOW_MOD to callbacks. It has no data plane: the
benchmark injects PACKET_INs itself (``packet_in``). Encoding and decoding is
plain ``struct`` so that the simulator stays far cheaper than the controller.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

OFP_VERSION = 0x04
OFPT_HELLO = 0
OFPT_ERROR = 1
OFPT_ECHO_REQUEST = 2
OFPT_ECHO_REPLY = 3
OFPT_FEATURES_REQUEST = 5
OFPT_FEATURES_REPLY = 6
OFPT_GET_CONFIG_REQUEST = 7
OFPT_GET_CONFIG_REPLY = 8
OFPT_SET_CONFIG = 9
OFPT_PACKET_IN = 10
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_MULTIPART_REQUEST = 18
OFPT_MULTIPART_REPLY = 19
OFPT_BARRIER_REQUEST = 20
OFPT_BARRIER_REPLY = 21
OFPT_ROLE_REQUEST = 24
OFPT_ROLE_REPLY = 25
OFPT_GET_ASYNC_REQUEST = 26
OFPT_GET_ASYNC_REPLY = 27

OFPMP_DESC = 0
OFPMP_PORT_DESC = 13

OFPFC_ADD = 0
OFPFC_MODIFY = 1
OFPFC_MODIFY_STRICT = 2
OFPFC_DELETE = 3
OFPFC_DELETE_STRICT = 4
OFPTT_ALL = 0xFF
OFPR_ACTION = 1
OFP_NO_BUFFER = 0xFFFFFFFF
OFPAT_OUTPUT = 0

_HEADER = struct.Struct("!BBHI")
_FEATURES = struct.Struct("!QIBB2xII")
_PORT = struct.Struct("!I4x6s2x16sIIIIIIII")
_MP_HEADER = struct.Struct("!HH4x")
# FLOW_MOD after the header: cookie, cookie_mask, table, command, idle, hard, priority,
# buffer_id, out_port, out_group, flags, pad.
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
_PACKET_OUT = struct.Struct("!IIH6x")
_PACKET_IN = struct.Struct("!IHBBQ")
# A match holding in_port only: type OXM, length 12, OXM in_port, 4 pad bytes.
_IN_PORT_MATCH = struct.Struct("!HHII4x")
_PACKET_IN_FIXED = _HEADER.size + _PACKET_IN.size + _IN_PORT_MATCH.size + 2
_OXM_IN_PORT = 0x80000004


@dataclass
class FlowTable:
    """Flow entries keyed by (table, priority, match bytes): ADD replaces, DELETE removes
    by cookie mask (non-strict deletes here only ever carry an empty match), DELETE_STRICT
    by priority, match and cookie mask."""

    entries: dict[tuple[int, int, bytes], int] = field(default_factory=dict)

    def apply(self, table: int, command: int, priority: int, cookie: int, cookie_mask: int,
              match: bytes) -> tuple[int, int]:
        """Apply one FLOW_MOD; returns (entries added, entries removed)."""
        if command == OFPFC_ADD:
            key = (table, priority, match)
            added = 0 if key in self.entries else 1
            self.entries[key] = cookie
            return added, 0
        if command == OFPFC_DELETE_STRICT:
            key = (table, priority, match)
            old = self.entries.get(key)
            if old is not None and old & cookie_mask == cookie & cookie_mask:
                del self.entries[key]
                return 0, 1
            return 0, 0
        if command == OFPFC_DELETE:
            doomed = [k for k, c in self.entries.items()
                      if (table == OFPTT_ALL or k[0] == table)
                      and c & cookie_mask == cookie & cookie_mask]
            for key in doomed:
                del self.entries[key]
            return 0, len(doomed)
        return 0, 0  # MODIFY: the ALG never sends it

    def count(self, table: int, min_priority: int = 1) -> int:
        return sum(1 for t, p, _ in self.entries if t == table and p >= min_priority)


@dataclass
class FlowMod:
    table: int
    command: int
    priority: int
    cookie: int
    cookie_mask: int
    match: bytes  # the whole ofp_match, padding included


@dataclass
class PacketOut:
    in_port: int
    out_ports: list[int]
    data: bytes


def header(msg_type: int, length: int, xid: int) -> bytes:
    return _HEADER.pack(OFP_VERSION, msg_type, length, xid)


def packet_in(xid: int, in_port: int, cookie: int, data: bytes, table_id: int = 0) -> bytes:
    """OFPT_PACKET_IN, reason ACTION, unbuffered, match in_port, with the whole frame."""
    length = _PACKET_IN_FIXED + len(data)
    return b"".join((header(OFPT_PACKET_IN, length, xid),
                     _PACKET_IN.pack(OFP_NO_BUFFER, len(data), OFPR_ACTION, table_id, cookie),
                     _IN_PORT_MATCH.pack(1, 12, _OXM_IN_PORT, in_port), b"\0\0", data))


def parse_match_fields(match: bytes) -> dict[int, bytes]:
    """OXM field number -> value (OpenFlow basic class only, masks dropped)."""
    fields: dict[int, bytes] = {}
    length = int.from_bytes(match[2:4], "big")
    offset = 4
    while offset + 4 <= length:
        oxm = int.from_bytes(match[offset:offset + 4], "big")
        size = oxm & 0xFF
        has_mask = (oxm >> 8) & 1
        value = match[offset + 4:offset + 4 + size]
        if oxm >> 16 == 0x8000:
            fields[(oxm >> 9) & 0x7F] = value[:size // 2] if has_mask else value
        offset += 4 + size
    return fields


class SimSwitch(asyncio.Protocol):
    """One simulated datapath on one OpenFlow connection."""

    def __init__(self, dpid: int, ports: tuple[int, ...],
                 on_packet_out: Callable[[PacketOut], None],
                 on_flow_mod: Callable[[FlowMod], None] | None = None) -> None:
        self.dpid = dpid
        self.ports = ports
        self.on_packet_out = on_packet_out
        self.on_flow_mod = on_flow_mod
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.received: Counter[int] = Counter()  # by message type
        self.sent: Counter[int] = Counter()
        self.table = FlowTable()
        self.flow_adds: Counter[int] = Counter()  # by table
        self.flow_removes: Counter[int] = Counter()
        self.features_answered = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.errors: list[bytes] = []
        self._xid = 0

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send(header(OFPT_HELLO, 8, self._next_xid()), OFPT_HELLO)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        end = len(buffer)
        while end - offset >= 8:
            length = (buffer[offset + 2] << 8) | buffer[offset + 3]
            if length < 8:
                raise ConnectionError(f"bad OpenFlow length {length}")
            if end - offset < length:
                break
            self._handle(bytes(buffer[offset:offset + length]))
            offset += length
        del buffer[:offset]

    # --- sending -------------------------------------------------------------------------

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def _send(self, data: bytes, msg_type: int) -> None:
        assert self.transport is not None
        self.sent[msg_type] += 1
        self.transport.write(data)

    def send_packet_in(self, in_port: int, cookie: int, frame: bytes) -> None:
        self._send(packet_in(self._next_xid(), in_port, cookie, frame), OFPT_PACKET_IN)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # --- receiving -----------------------------------------------------------------------

    def _handle(self, msg: bytes) -> None:
        msg_type = msg[1]
        xid = int.from_bytes(msg[4:8], "big")
        self.received[msg_type] += 1
        if msg_type == OFPT_PACKET_OUT:
            self._packet_out(msg)
        elif msg_type == OFPT_FLOW_MOD:
            self._flow_mod(msg)
        elif msg_type == OFPT_BARRIER_REQUEST:
            self._send(header(OFPT_BARRIER_REPLY, 8, xid), OFPT_BARRIER_REPLY)
        elif msg_type == OFPT_ECHO_REQUEST:
            self._send(header(OFPT_ECHO_REPLY, len(msg), xid) + msg[8:], OFPT_ECHO_REPLY)
        elif msg_type == OFPT_FEATURES_REQUEST:
            body = _FEATURES.pack(self.dpid, 0, 254, 0, 0x4F, 0)
            self._send(header(OFPT_FEATURES_REPLY, 8 + len(body), xid) + body,
                       OFPT_FEATURES_REPLY)
            if not self.features_answered.done():
                self.features_answered.set_result(None)
        elif msg_type == OFPT_MULTIPART_REQUEST:
            self._multipart(msg, xid)
        elif msg_type == OFPT_GET_CONFIG_REQUEST:
            self._send(header(OFPT_GET_CONFIG_REPLY, 12, xid) + struct.pack("!HH", 0, 0xFFFF),
                       OFPT_GET_CONFIG_REPLY)
        elif msg_type == OFPT_ROLE_REQUEST:
            self._send(header(OFPT_ROLE_REPLY, len(msg), xid) + msg[8:], OFPT_ROLE_REPLY)
        elif msg_type == OFPT_GET_ASYNC_REQUEST:
            body = bytes(24)
            self._send(header(OFPT_GET_ASYNC_REPLY, 32, xid) + body, OFPT_GET_ASYNC_REPLY)
        elif msg_type == OFPT_ERROR:
            self.errors.append(msg)
        # HELLO, SET_CONFIG and anything else: nothing to answer.

    def _multipart(self, msg: bytes, xid: int) -> None:
        mp_type = int.from_bytes(msg[8:10], "big")
        body = b""
        if mp_type == OFPMP_PORT_DESC:
            body = b"".join(
                _PORT.pack(port, bytes((2, 0, 0, 0, self.dpid & 0xFF, port & 0xFF)),
                           f"sim{port}".encode(), 0, 4, 0x2840, 0x2840, 0x2840, 0, 10**7,
                           10**7)
                for port in self.ports)
        elif mp_type == OFPMP_DESC:
            body = b"".join(text.encode().ljust(size, b"\0") for text, size in (
                ("ryu-pptp-alg bench", 256), ("simswitch", 256), ("1", 256), ("0", 32),
                ("sim", 256)))
        # FLOW, TABLE, PORT stats and the rest: an empty reply of the same type.
        reply = _MP_HEADER.pack(mp_type, 0) + body
        self._send(header(OFPT_MULTIPART_REPLY, 8 + len(reply), xid) + reply,
                   OFPT_MULTIPART_REPLY)

    def _flow_mod(self, msg: bytes) -> None:
        (cookie, cookie_mask, table, command, _idle, _hard, priority, _buffer, _out_port,
         _out_group, _flags) = _FLOW_MOD.unpack_from(msg, 8)
        match_length = int.from_bytes(msg[50:52], "big")
        match = msg[48:48 + (match_length + 7) // 8 * 8]
        _, removed = self.table.apply(table, command, priority, cookie, cookie_mask, match)
        if command == OFPFC_ADD:
            self.flow_adds[table] += 1
        elif command in (OFPFC_DELETE, OFPFC_DELETE_STRICT):
            self.flow_removes[table] += removed
        if self.on_flow_mod is not None:
            self.on_flow_mod(FlowMod(table, command, priority, cookie, cookie_mask, match))

    def _packet_out(self, msg: bytes) -> None:
        _buffer, in_port, actions_len = _PACKET_OUT.unpack_from(msg, 8)
        out_ports = []
        offset = 24
        end = 24 + actions_len
        while offset + 8 <= end:
            action_type = int.from_bytes(msg[offset:offset + 2], "big")
            action_len = int.from_bytes(msg[offset + 2:offset + 4], "big")
            if action_type == OFPAT_OUTPUT:
                out_ports.append(int.from_bytes(msg[offset + 4:offset + 8], "big"))
            offset += max(action_len, 8)
        self.on_packet_out(PacketOut(in_port, out_ports, msg[end:]))


async def connect(host: str, port: int, dpid: int, ports: tuple[int, ...],
                  on_packet_out: Callable[[PacketOut], None],
                  on_flow_mod: Callable[[FlowMod], None] | None = None,
                  timeout: float = 30.0) -> SimSwitch:
    """Connect to the controller (retrying while it starts) and finish the handshake."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, protocol = await loop.create_connection(
                lambda: SimSwitch(dpid, ports, on_packet_out, on_flow_mod), host, port)
            break
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
    await asyncio.wait_for(protocol.features_answered, max(deadline - loop.time(), 1.0))
    return protocol
