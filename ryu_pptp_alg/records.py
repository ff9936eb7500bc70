"""A gateway's state as plain records, and their codec to plain (msgpack-able) data.

Records refer to each other by id, never by object: a call names its connection and
its GRE pair by id. Everything else the gateway keeps (which connection a packet
belongs to, which calls share a pair, which call IDs are taken, ...) is an index
that ``state.GatewayState.rebuild`` derives from these records alone, so the records
are all a restart needs and all the state store keeps.

The codec is pure and symmetric: ``decode_*(encode_*(r)) == r`` for every record
(tests/unit/test_records.py checks it over generated records). Addresses travel as
integers, enums as their values; a record is a flat list, its fields in the order
given here. ``SCHEMA`` names the layout; a store holding another is not read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from ipaddress import IPv4Address
from typing import Any

# The layout's number. Fields appended to a record's list are optional (a record written
# before them decodes with their defaults), so adding one keeps the number and an upgrade
# keeps every call; anything else is a new number.
SCHEMA = 1

# Kinds of record, as the store names them.
CONN = "conn"
CALL = "call"
PAIR = "pair"
FORWARD = "fwd"
META = "meta"  # counters of the state itself: ID_MARK
ID_MARK = "id_mark"  # ids below it may have been handed out: a restart starts there


class Direction(StrEnum):
    OUTBOUND = "outbound"  # client inside, server outside
    INBOUND = "inbound"  # server inside behind a port forward, client outside


class ConnState(StrEnum):
    CONNECTING = "connecting"  # TCP only, no Start-Control-Connection-Request yet
    STARTING = "starting"  # request seen, reply awaited
    ESTABLISHED = "established"
    STOPPING = "stopping"  # Stop-Control-Connection-Request seen
    CLOSING = "closing"  # TCP FIN or RST seen; mapping kept briefly for the close handshake


class CallState(StrEnum):
    REQUESTED = "requested"  # Outgoing-Call-Request seen, reply awaited
    ESTABLISHED = "established"
    CLEARING = "clearing"  # Call-Clear-Request seen, Call-Disconnect-Notify awaited
    CLOSED = "closed"


class Path(StrEnum):
    FAST = "fast"  # the switch forwards this call's GRE in both directions
    SLOW = "slow"  # the controller carries its GRE one way or both
    REFUSED = "refused"  # inward GRE has no way in (flows refused, or none): it carries nothing


# Flows of a pair the switch refused (``Pair.refused``): its outward rewrite (the
# controller carries that direction then: inside GRE no flow takes goes to it), its
# inward rewrite (the key's via-controller flow can), or that via-controller flow.
REFUSED_OUTWARD = 1
REFUSED_INWARD = 2
REFUSED_CONTROLLER = 4


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a rewritten packet goes: next-hop MAC and switch port."""

    mac: str
    port: int


@dataclass(frozen=True, slots=True)
class StreamMark:
    """Where one direction of a control stream stands, as a restart needs it: the
    sequence number of the next message's first byte, and the call-ID patches that
    retransmissions of bytes already forwarded must get again ((seq, byte) pairs)."""

    seq: int
    patches: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Injection:
    """Bytes the gateway put into one direction of a control stream (a message ending a
    call), not yet acknowledged by their receiver: sent again until they are."""

    seq: int  # the sender's sequence number the bytes go in before
    data: bytes
    ack: int  # the acknowledgement they carry (the other direction's position then)
    tries: int = 1  # times sent


@dataclass(frozen=True, slots=True)
class SeqShift:
    """Injected bytes in one direction of a control stream: the sender's later bytes go
    out this much further on, and the receiver's acknowledgements come back that much
    lower (``seqshift``). Connection state: it lasts as long as the connection."""

    total: int = 0  # acknowledged injected bytes
    pending: tuple[Injection, ...] = ()  # in stream order


@dataclass(eq=False, slots=True)
class Conn:
    """One PPTP control connection through the NAT."""

    id: int
    client_ip: IPv4Address  # the PNS
    client_port: int
    server_ip: IPv4Address  # the PAC
    server_port: int
    public_ip: IPv4Address  # what the outside end talks to
    public_port: int
    created: float
    inbound: bool = False  # the server is inside, behind a port forward
    state: ConnState = ConnState.CONNECTING
    last_seen: float = 0.0
    closed_at: float | None = None
    # Each direction's stream, from the client's SYN and the server's SYN-ACK: a rewriter
    # (``rewriter.StreamRewriter``), only its next sequence number while it is parked
    # between messages, or a ``StreamMark`` just restored (resynchronised on the framing).
    to_server: Any = None
    to_client: Any = None
    # Call IDs the server sees, by the client's own: entries for calls whose request is
    # still in the stream, and for translated calls while they live.
    id_map: dict[int, int] | None = None
    errors: Counter[str] | None = None  # created with the first error
    # Bytes the gateway injected into each direction (``Gateway.end_call``), if any.
    to_server_shift: SeqShift | None = None
    to_client_shift: SeqShift | None = None

    @property
    def direction(self) -> Direction:
        return Direction.INBOUND if self.inbound else Direction.OUTBOUND

    @property
    def inside(self) -> tuple[IPv4Address, int]:
        return (self.server_ip, self.server_port) if self.inbound \
            else (self.client_ip, self.client_port)

    @property
    def outside(self) -> tuple[IPv4Address, int]:
        return (self.client_ip, self.client_port) if self.inbound \
            else (self.server_ip, self.server_port)

    @property
    def inside_key(self) -> tuple[IPv4Address, int, IPv4Address, int]:
        """(src, sport, dst, dport) of its packets arriving from inside."""
        return (*self.inside, *self.outside)

    @property
    def outside_key(self) -> tuple[IPv4Address, int, IPv4Address, int]:
        """(src, sport, dst, dport) of its packets arriving from outside."""
        return (*self.outside, self.public_ip, self.public_port)

    @property
    def gre_key(self) -> tuple[IPv4Address, IPv4Address]:
        """(outside host, public address): what the switch tells its inward GRE by."""
        return (self.outside[0], self.public_ip)

    def count_error(self, name: str) -> None:
        if self.errors is None:
            self.errors = Counter()
        self.errors[name] += 1

    def public_id(self, client_id: int) -> int:
        return client_id if self.id_map is None else self.id_map.get(client_id, client_id)

    def client_id(self, public_id: int) -> int:
        for client, public in (self.id_map or {}).items():
            if public == public_id:
                return client
        return public_id


@dataclass(eq=False, slots=True)
class Call:
    id: int
    conn: int  # Conn.id
    client_call_id: int
    public_call_id: int
    created: float
    inbound: bool = False
    server_call_id: int | None = None
    state: CallState = CallState.REQUESTED
    pair: int | None = None  # Pair.id, once its GRE has one
    slow_packets: int = 0
    slow_bytes: int = 0

    @property
    def inward_id(self) -> int | None:
        """The call ID that inward GRE (from outside to the public address) carries:
        the inside end's ID as the outside end knows it."""
        return self.server_call_id if self.inbound else self.public_call_id

    @property
    def outward_id(self) -> int | None:
        """The call ID that outward GRE carries: the outside end's own."""
        return self.client_call_id if self.inbound else self.server_call_id

    @property
    def inside_id(self) -> int | None:
        """The call ID the inside end expects in the GRE it receives."""
        return self.server_call_id if self.inbound else self.client_call_id

    @property
    def translated(self) -> bool:
        return self.public_call_id != self.client_call_id


@dataclass(eq=False, slots=True)
class Pair:
    """One inside host talking GRE to one outside host through one public address; its
    flows carry the cookie of its id and are shared by its calls."""

    id: int
    inside_ip: IPv4Address
    outside_ip: IPv4Address
    public_ip: IPv4Address
    to_inside: Hop
    to_outside: Hop
    installed: bool = False  # its outward flow is sent (a call on it was established)
    refused: int = 0  # REFUSED_* flags: flows the switch would not take
    # GRE counters: live flows (from flow stats) and flows already gone.
    outward_packets: int = 0
    outward_bytes: int = 0
    inward_packets: int = 0
    inward_bytes: int = 0
    removed_packets: int = 0
    removed_bytes: int = 0

    @property
    def key(self) -> tuple[IPv4Address, IPv4Address]:
        return (self.outside_ip, self.public_ip)

    def traffic(self) -> tuple[int, int]:
        return (self.removed_packets + self.outward_packets + self.inward_packets,
                self.removed_bytes + self.outward_bytes + self.inward_bytes)


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


# --- codec: records <-> plain data ---------------------------------------------------------

def _ip(value: int) -> IPv4Address:
    return IPv4Address(value)


def encode_stream(stream: Any) -> Any:
    """A stream as the store keeps it: None, or [seq, [[seq, byte], ...]]."""
    if stream is None:
        return None
    if isinstance(stream, int):
        return [stream, []]
    mark = stream if isinstance(stream, StreamMark) else stream.mark()
    return [mark.seq, [list(p) for p in mark.patches]]


def decode_stream(value: Any) -> StreamMark | None:
    if value is None:
        return None
    seq, patches = value
    return StreamMark(int(seq), tuple((int(s), int(b)) for s, b in patches))


def encode_shift(shift: SeqShift | None) -> Any:
    """A shift as the store keeps it: None, or [total, [[seq, data, ack, tries], ...]]."""
    if shift is None:
        return None
    return [shift.total, [[i.seq, i.data, i.ack, i.tries] for i in shift.pending]]


def decode_shift(value: Any) -> SeqShift | None:
    if value is None:
        return None
    total, pending = value
    return SeqShift(int(total), tuple(Injection(int(seq), bytes(data), int(ack), int(tries))
                                      for seq, data, ack, tries in pending))


def encode_conn(conn: Conn) -> list[Any]:
    return [int(conn.client_ip), conn.client_port, int(conn.server_ip), conn.server_port,
            int(conn.public_ip), conn.public_port, conn.created, conn.inbound,
            str(conn.state), conn.last_seen, conn.closed_at, encode_stream(conn.to_server),
            encode_stream(conn.to_client),
            None if conn.id_map is None else [[k, v] for k, v in conn.id_map.items()],
            None if conn.errors is None else dict(conn.errors),
            encode_shift(conn.to_server_shift), encode_shift(conn.to_client_shift)]


def decode_conn(ident: int, value: list[Any]) -> Conn:
    (client_ip, client_port, server_ip, server_port, public_ip, public_port, created,
     inbound, state, last_seen, closed_at, to_server, to_client, id_map, errors,
     to_server_shift, to_client_shift) = [*value, None, None][:17]  # shifts came later
    return Conn(int(ident), _ip(client_ip), client_port, _ip(server_ip), server_port,
                _ip(public_ip), public_port, created, bool(inbound), ConnState(state),
                last_seen, closed_at, decode_stream(to_server), decode_stream(to_client),
                None if id_map is None else {int(k): int(v) for k, v in id_map},
                None if errors is None else Counter({str(k): int(v)
                                                     for k, v in errors.items()}),
                decode_shift(to_server_shift), decode_shift(to_client_shift))


def encode_call(call: Call) -> list[Any]:
    return [call.conn, call.client_call_id, call.public_call_id, call.created, call.inbound,
            call.server_call_id, str(call.state), call.pair, call.slow_packets,
            call.slow_bytes]


def decode_call(ident: int, value: list[Any]) -> Call:
    (conn, client_call_id, public_call_id, created, inbound, server_call_id, state, pair,
     slow_packets, slow_bytes) = value
    return Call(int(ident), conn, client_call_id, public_call_id, created, bool(inbound),
                server_call_id, CallState(state), pair, slow_packets, slow_bytes)


def encode_pair(pair: Pair) -> list[Any]:
    return [int(pair.inside_ip), int(pair.outside_ip), int(pair.public_ip),
            pair.to_inside.mac, pair.to_inside.port, pair.to_outside.mac, pair.to_outside.port,
            pair.installed, pair.refused, pair.outward_packets, pair.outward_bytes,
            pair.inward_packets,
            pair.inward_bytes, pair.removed_packets, pair.removed_bytes]


def decode_pair(ident: int, value: list[Any]) -> Pair:
    (inside_ip, outside_ip, public_ip, in_mac, in_port, out_mac, out_port, installed,
     refused, *counters) = value
    return Pair(int(ident), _ip(inside_ip), _ip(outside_ip), _ip(public_ip),
                Hop(in_mac, in_port), Hop(out_mac, out_port), bool(installed), int(refused),
                *counters)
