"""Control connections and calls, tracked through the RFC 2637 state machine.

Pure bookkeeping: the tracker reads parsed control messages and reports what
happened to calls as events; the gateway turns those into flows.

Roles are RFC 2637's: the *client* is the PNS (it places Outgoing-Call-Requests
and answers Incoming-Call-Requests), the *server* the PAC. Outbound, the client
is inside and reaches the server through a public address and port; inbound, a
server inside is reached through a port forward and the client is outside.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.rewriter import StreamRewriter

if TYPE_CHECKING:
    from ryu_pptp_alg.pairs import GrePair

LOG = logging.getLogger("ryu_pptp_alg.session")

CALL_CONNECTED = 1  # Outgoing-Call-Reply / Incoming-Call-Reply result code "Connected"
START_OK = 1  # Start-Control-Connection-Reply result code "successful channel establishment"


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
    SLOW = "slow"  # inward GRE goes through the controller


class EventKind(StrEnum):
    CALL_REQUESTED = "call-requested"
    CALL_ESTABLISHED = "call-established"
    CALL_CLOSED = "call-closed"


@dataclass(eq=False, slots=True)
class Call:
    client_call_id: int
    public_call_id: int
    created: float
    server_call_id: int | None = None
    state: CallState = CallState.REQUESTED
    inbound: bool = False
    pair: GrePair | None = None
    slow_packets: int = 0
    slow_bytes: int = 0

    @property
    def inward_id(self) -> int | None:
        """The call ID that inward GRE (from outside to the public address) carries:
        the inside end's ID as the outside end knows it."""
        return self.server_call_id if self.inbound else self.public_call_id

    @property
    def inside_id(self) -> int | None:
        """The call ID the inside end expects in the GRE it receives."""
        return self.server_call_id if self.inbound else self.client_call_id

    @property
    def path(self) -> Path:
        if self.pair is not None and self.pair.fast and self.state == CallState.ESTABLISHED:
            return Path.FAST
        return Path.SLOW

    def row(self) -> dict[str, Any]:
        packets, octets = (0, 0) if self.pair is None else self.pair.traffic()
        return {
            "client_call_id": self.client_call_id,
            "public_call_id": self.public_call_id,
            "server_call_id": self.server_call_id,
            "state": str(self.state),
            "path": str(self.path),
            "packets": packets + self.slow_packets,
            "bytes": octets + self.slow_bytes,
            "created": timestamp(self.created),
        }


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    call: Call


@dataclass(eq=False, slots=True)
class ControlConnection:
    """One PPTP control connection through the NAT, and its calls."""

    client_ip: IPv4Address  # the PNS
    client_port: int
    server_ip: IPv4Address  # the PAC
    server_port: int
    public_ip: IPv4Address  # what the outside end talks to
    public_port: int
    created: float
    direction: Direction = Direction.OUTBOUND
    state: ConnState = ConnState.CONNECTING
    last_seen: float = 0.0
    closed_at: float | None = None
    calls: tuple[Call, ...] = ()  # usually one: a tuple is the smallest container
    # Each direction's stream, from the client's SYN and the server's SYN-ACK: a rewriter,
    # or only its next sequence number while it is parked between messages.
    to_server: StreamRewriter | int | None = None
    to_client: StreamRewriter | int | None = None
    # Call IDs the server sees, by the client's own (created with the first call).
    id_map: dict[int, int] | None = None
    errors: Counter[str] | None = None  # created with the first error

    def count_error(self, name: str) -> None:
        if self.errors is None:
            self.errors = Counter()
        self.errors[name] += 1

    def public_id(self, client_id: int) -> int:
        return client_id if self.id_map is None else self.id_map.get(client_id, client_id)

    def settle_id(self, client_id: int) -> None:
        """The call exists now: an untranslated ID needs no entry (its call has it)."""
        if self.id_map is not None and self.id_map.get(client_id) == client_id:
            del self.id_map[client_id]
            if not self.id_map:
                self.id_map = None

    def client_id(self, public_id: int) -> int:
        for client, public in (self.id_map or {}).items():
            if public == public_id:
                return client
        return public_id

    @property
    def inbound(self) -> bool:
        return self.direction == Direction.INBOUND

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
    def live_calls(self) -> list[Call]:
        return [call for call in self.calls if call.state != CallState.CLOSED]

    def call_by(self, attribute: str, value: int) -> Call | None:
        for call in self.calls:
            if call.state != CallState.CLOSED and getattr(call, attribute) == value:
                return call
        return None

    def row(self, dpid: int) -> dict[str, Any]:
        return {
            "dpid": dpid,
            "direction": str(self.direction),
            "client": f"{self.client_ip}:{self.client_port}",
            "public": f"{self.public_ip}:{self.public_port}",
            "server": f"{self.server_ip}:{self.server_port}",
            "state": str(self.state),
            "created": timestamp(self.created),
            "last_seen": timestamp(self.last_seen),
            "calls": [call.row() for call in self.live_calls],
            "errors": dict(self.errors or {}),
        }


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class Tracker:
    """Applies control messages to a connection; returns what happened to its calls."""

    def __init__(self, clock_now: float) -> None:
        self.now = clock_now

    def client_message(self, conn: ControlConnection, msg: pptp.Message) -> list[Event]:
        match msg:
            case pptp.StartControlConnectionRequest():
                if conn.state == ConnState.CONNECTING:
                    conn.state = ConnState.STARTING
            case pptp.OutgoingCallRequest(call_id=call_id):
                return self._new_call(conn, call_id, None, msg)
            case pptp.IncomingCallReply(call_id=call_id, peer_call_id=peer, result_code=result):
                if result != CALL_CONNECTED:
                    return []
                return self._new_call(conn, call_id, peer, msg)
            case pptp.CallClearRequest(call_id=call_id):
                call = self._call(conn, "client_call_id", call_id, msg)
                if call is not None and call.state != CallState.CLOSED:
                    call.state = CallState.CLEARING
            case pptp.CallDisconnectNotify(call_id=call_id):
                return self._close(self._call(conn, "client_call_id", call_id, msg))
            case pptp.StopControlConnectionRequest() | pptp.StopControlConnectionReply():
                return self._stop(conn)
        return []

    def server_message(self, conn: ControlConnection, msg: pptp.Message) -> list[Event]:
        match msg:
            case pptp.StartControlConnectionReply(result_code=result):
                if conn.state in (ConnState.CONNECTING, ConnState.STARTING):
                    conn.state = ConnState.ESTABLISHED if result == START_OK \
                        else ConnState.STOPPING
            case pptp.OutgoingCallReply(call_id=server_id, peer_call_id=peer, result_code=result):
                call = self._call(conn, "public_call_id", peer, msg)
                if call is None:
                    return []
                if call.state == CallState.CLEARING and call.server_call_id is None:
                    call.server_call_id = server_id  # its Call-Disconnect-Notify names it
                if call.state != CallState.REQUESTED:
                    return []
                if result != CALL_CONNECTED:
                    return self._close(call)
                call.server_call_id = server_id
                call.state = CallState.ESTABLISHED
                return [Event(EventKind.CALL_ESTABLISHED, call)]
            case pptp.IncomingCallConnected(peer_call_id=peer):
                call = self._call(conn, "public_call_id", peer, msg)
                if call is None or call.state != CallState.REQUESTED:
                    return []
                call.state = CallState.ESTABLISHED
                return [Event(EventKind.CALL_ESTABLISHED, call)]
            case pptp.CallDisconnectNotify(call_id=server_id):
                return self._close(self._call(conn, "server_call_id", server_id, msg))
            case pptp.StopControlConnectionRequest() | pptp.StopControlConnectionReply():
                return self._stop(conn)
        return []

    def connection_closed(self, conn: ControlConnection) -> list[Event]:
        """TCP FIN/RST or a timeout: every call on the connection ends."""
        events: list[Event] = []
        for call in conn.live_calls:
            events.extend(self._close(call))
        return events

    def _new_call(self, conn: ControlConnection, call_id: int, server_call_id: int | None,
                  msg: pptp.Message) -> list[Event]:
        """The client (PNS) announced its call ID: Outgoing-Call-Request or Incoming-Call-Reply."""
        if conn.call_by("client_call_id", call_id) is not None:
            conn.count_error("duplicate_call_id")
            LOG.warning("%s: %s reuses live call ID %d", describe(conn),
                        pptp.message_name(msg.TYPE), call_id)
            return []
        call = Call(client_call_id=call_id,
                    public_call_id=conn.public_id(call_id),
                    created=self.now, server_call_id=server_call_id, inbound=conn.inbound)
        conn.settle_id(call_id)
        conn.calls = (*conn.calls, call)
        return [Event(EventKind.CALL_REQUESTED, call)]

    def _stop(self, conn: ControlConnection) -> list[Event]:
        if conn.state != ConnState.CLOSING:
            conn.state = ConnState.STOPPING
        return self.connection_closed(conn)

    def _call(self, conn: ControlConnection, attribute: str, value: int,
              msg: pptp.Message) -> Call | None:
        call = conn.call_by(attribute, value)
        if call is None:
            conn.count_error("unknown_call_id")
            LOG.info("%s: %s names unknown call ID %d", describe(conn),
                     pptp.message_name(msg.TYPE), value)
        return call

    @staticmethod
    def _close(call: Call | None) -> list[Event]:
        if call is None or call.state == CallState.CLOSED:
            return []
        call.state = CallState.CLOSED
        return [Event(EventKind.CALL_CLOSED, call)]


def describe(conn: ControlConnection) -> str:
    if conn.inbound:
        return (f"{conn.client_ip}:{conn.client_port} -> {conn.public_ip}:{conn.public_port} "
                f"forwarded to {conn.server_ip}:{conn.server_port}")
    return (f"{conn.client_ip}:{conn.client_port} -> {conn.server_ip}:{conn.server_port} "
            f"as {conn.public_ip}:{conn.public_port}")


class Described:
    """``describe(conn)``, formatted only if a log line is actually emitted."""

    __slots__ = ("conn",)

    def __init__(self, conn: ControlConnection) -> None:
        self.conn = conn

    def __str__(self) -> str:
        return describe(self.conn)
