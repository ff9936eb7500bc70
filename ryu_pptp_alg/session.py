"""Control connections and calls, tracked through the RFC 2637 state machine.

Pure bookkeeping: the tracker reads parsed control messages, updates the records of
a connection and its calls (``records.py``, kept in a ``state.GatewayState``) and
reports what happened to calls as events; the gateway turns those into flows.

Roles are RFC 2637's: the *client* is the PNS (it places Outgoing-Call-Requests
and answers Incoming-Call-Requests), the *server* the PAC. Outbound, the client
is inside and reaches the server through a public address and port; inbound, a
server inside is reached through a port forward and the client is outside.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import Limits
from ryu_pptp_alg.counters import CONNECTION_ERROR_PREFIX
from ryu_pptp_alg.records import (
    CALL,
    CONN,
    Call,
    CallState,
    Conn,
    ConnState,
    Direction,
    Path,
    timestamp,
)
from ryu_pptp_alg.state import GatewayState

__all__ = ["Call", "CallState", "CloseReason", "Conn", "ConnState", "Described", "Direction",
           "Event", "EventKind", "Path", "Tracker", "describe", "timestamp"]

LOG = logging.getLogger("ryu_pptp_alg.session")

CALL_CONNECTED = 1  # Outgoing-Call-Reply / Incoming-Call-Reply result code "Connected"
START_OK = 1  # Start-Control-Connection-Reply result code "successful channel establishment"


class EventKind(StrEnum):
    CALL_REQUESTED = "call-requested"
    CALL_ESTABLISHED = "call-established"
    CALL_CLOSED = "call-closed"


class CloseReason(StrEnum):
    """Why a call ended, as its log line says."""

    CLEAR = "clear"  # Call-Disconnect-Notify after the client's Call-Clear-Request
    DISCONNECT = "disconnect"  # Call-Disconnect-Notify unasked
    REJECTED = "rejected"  # the server's reply said it failed
    STOP = "stop"  # Stop-Control-Connection
    CONNECTION_CLOSED = "connection_closed"  # TCP FIN or RST
    RESET = "reset"  # a stream the gateway could not follow: reset
    IDLE = "idle"  # its GRE flows or its control connection went idle
    FORWARD_REMOVED = "forward_removed"
    TEARDOWN = "teardown"  # asked over REST
    REFUSED = "refused"  # nothing could carry its GRE


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    call: Call
    reason: str = ""  # a CloseReason, for CALL_CLOSED


class Tracker:
    """Applies control messages to a connection; returns what happened to its calls."""

    def __init__(self, state: GatewayState, now: float, limits: Limits | None = None,
                 counters: Counter[str] | None = None,
                 log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.state = state
        self.now = now
        self.limits = limits or Limits()
        self.counters = counters  # the gateway's: connection errors are summed there too
        self.log = LOG if log is None else log  # the gateway's: its lines name it

    def _error(self, conn: Conn, name: str) -> None:
        conn.count_error(name)
        if self.counters is not None:
            self.counters[CONNECTION_ERROR_PREFIX + name] += 1

    def client_message(self, conn: Conn, msg: pptp.Message) -> list[Event]:
        match msg:
            case pptp.StartControlConnectionRequest():
                if conn.state == ConnState.CONNECTING:
                    conn.state = ConnState.STARTING  # passing: written with the reply
            case pptp.OutgoingCallRequest(call_id=call_id):
                return self._new_call(conn, call_id, None, msg)
            case pptp.IncomingCallReply(call_id=call_id, peer_call_id=peer, result_code=result):
                if result != CALL_CONNECTED:
                    return []
                return self._new_call(conn, call_id, peer, msg)
            case pptp.CallClearRequest(call_id=call_id):
                call = self._call(conn, "client_call_id", call_id, msg)
                if call is not None:
                    self._set_call_state(call, CallState.CLEARING)
            case pptp.CallDisconnectNotify(call_id=call_id):
                return self._close(self._call(conn, "client_call_id", call_id, msg),
                                   CloseReason.DISCONNECT)
            case pptp.StopControlConnectionRequest() | pptp.StopControlConnectionReply():
                return self._stop(conn)
        return []

    def server_message(self, conn: Conn, msg: pptp.Message) -> list[Event]:
        match msg:
            case pptp.StartControlConnectionReply(result_code=result):
                if conn.state in (ConnState.CONNECTING, ConnState.STARTING):
                    self._set_state(conn, ConnState.ESTABLISHED if result == START_OK
                                    else ConnState.STOPPING)
            case pptp.OutgoingCallReply(call_id=server_id, peer_call_id=peer, result_code=result):
                call = self._call(conn, "public_call_id", peer, msg)
                if call is None:
                    return []
                if call.state == CallState.CLEARING and call.server_call_id is None:
                    self.state.set_server_call_id(call, server_id)  # its CDN names it
                if call.state != CallState.REQUESTED:
                    return []
                if result != CALL_CONNECTED:
                    return self._close(call, CloseReason.REJECTED)
                self.state.set_server_call_id(call, server_id)
                self._set_call_state(call, CallState.ESTABLISHED)
                return [Event(EventKind.CALL_ESTABLISHED, call)]
            case pptp.IncomingCallConnected(peer_call_id=peer):
                call = self._call(conn, "public_call_id", peer, msg)
                if call is None or call.state != CallState.REQUESTED:
                    return []
                self._set_call_state(call, CallState.ESTABLISHED)
                return [Event(EventKind.CALL_ESTABLISHED, call)]
            case pptp.CallDisconnectNotify(call_id=server_id):
                return self._close(self._call(conn, "server_call_id", server_id, msg),
                                   CloseReason.DISCONNECT)
            case pptp.StopControlConnectionRequest() | pptp.StopControlConnectionReply():
                return self._stop(conn)
        return []

    def connection_closed(self, conn: Conn,
                          reason: str = CloseReason.CONNECTION_CLOSED) -> list[Event]:
        """TCP FIN/RST, a timeout or a teardown: every call on the connection ends."""
        events: list[Event] = []
        for call in list(self.state.calls_of(conn)):
            events.extend(self._close(call, reason))
        return events

    def _new_call(self, conn: Conn, call_id: int, server_call_id: int | None,
                  msg: pptp.Message) -> list[Event]:
        """The client (PNS) announced its call ID: Outgoing-Call-Request or Incoming-Call-Reply."""
        if conn.state == ConnState.CLOSING:
            self._error(conn, "call_after_close")  # never a call nothing will end
            self.log.info("%s: %s after the connection closed: ignored", describe(conn),
                     pptp.message_name(msg.TYPE))
            return []
        if self._live(conn, "client_call_id", call_id) is not None:
            self._error(conn, "duplicate_call_id")
            self.log.warning("%s: %s reuses live call ID %d", describe(conn),
                        pptp.message_name(msg.TYPE), call_id)
            return []
        if len(self.state.calls_of(conn)) >= self.limits.max_calls_per_connection \
                or len(self.state.calls) >= self.limits.max_calls:
            self._error(conn, "call_cap")  # forwarded (the stream is not ours to cut), not
            self.log.warning("%s: call %d over the call caps: not tracked, no GRE flows",
                        describe(conn), call_id)  # tracked: its GRE finds no flows
            return []
        call = Call(self.state.new_id(), conn.id, client_call_id=call_id,
                    public_call_id=conn.public_id(call_id), created=self.now,
                    inbound=conn.inbound, server_call_id=server_call_id)
        self.state.add_call(call)
        return [Event(EventKind.CALL_REQUESTED, call)]

    def _stop(self, conn: Conn) -> list[Event]:
        if conn.state != ConnState.CLOSING:
            self._set_state(conn, ConnState.STOPPING)
        return self.connection_closed(conn, CloseReason.STOP)

    def _live(self, conn: Conn, attribute: str, value: int) -> Call | None:
        for call in self.state.calls_of(conn):
            if call.state != CallState.CLOSED and getattr(call, attribute) == value:
                return call
        return None

    def _call(self, conn: Conn, attribute: str, value: int, msg: pptp.Message) -> Call | None:
        call = self._live(conn, attribute, value)
        if call is None:
            self._error(conn, "unknown_call_id")
            self.log.info("%s: %s names unknown call ID %d", describe(conn),
                     pptp.message_name(msg.TYPE), value)
        return call

    def _set_state(self, conn: Conn, state: ConnState) -> None:
        conn.state = state
        self.state.touch_lazy(CONN, conn.id)

    def _set_call_state(self, call: Call, state: CallState) -> None:
        call.state = state
        self.state.touch(CALL, call.id)

    def _close(self, call: Call | None, reason: str) -> list[Event]:
        if call is None or call.state == CallState.CLOSED:
            return []
        if reason == CloseReason.DISCONNECT and call.state == CallState.CLEARING:
            reason = CloseReason.CLEAR
        call.state = CallState.CLOSED
        return [Event(EventKind.CALL_CLOSED, call, reason)]


def describe(conn: Conn) -> str:
    if conn.inbound:
        return (f"{conn.client_ip}:{conn.client_port} -> {conn.public_ip}:{conn.public_port} "
                f"forwarded to {conn.server_ip}:{conn.server_port}")
    return (f"{conn.client_ip}:{conn.client_port} -> {conn.server_ip}:{conn.server_port} "
            f"as {conn.public_ip}:{conn.public_port}")


class Described:
    """``describe(conn)``, formatted only if a log line is actually emitted."""

    __slots__ = ("conn",)

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def __str__(self) -> str:
        return describe(self.conn)


def call_row(call: Call, path: Path, traffic: tuple[int, int]) -> dict[str, Any]:
    packets, octets = traffic
    return {
        "client_call_id": call.client_call_id,
        "public_call_id": call.public_call_id,
        "server_call_id": call.server_call_id,
        "state": str(call.state),
        "path": str(path),
        "packets": packets + call.slow_packets,
        "bytes": octets + call.slow_bytes,
        "created": timestamp(call.created),
    }


def session_id(dpid: int, conn_id: int) -> str:
    """A session's id in the REST API: stable, as the Conn record id survives restarts."""
    return f"{dpid}-{conn_id}"


def parse_session_id(text: str) -> tuple[int, int]:
    """(dpid, conn id) of a ``session_id``; ValueError if it is not one."""
    dpid, sep, conn_id = text.partition("-")
    if not (sep and text.isascii() and dpid.isdecimal() and conn_id.isdecimal()) \
            or len(text) > 42:
        raise ValueError(text)
    return int(dpid), int(conn_id)


def conn_row(conn: Conn, dpid: int, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": session_id(dpid, conn.id),
        "dpid": dpid,
        "direction": str(conn.direction),
        "client": f"{conn.client_ip}:{conn.client_port}",
        "public": f"{conn.public_ip}:{conn.public_port}",
        "server": f"{conn.server_ip}:{conn.server_port}",
        "state": str(conn.state),
        "created": timestamp(conn.created),
        "last_seen": timestamp(conn.last_seen),
        "calls": calls,
        "errors": dict(conn.errors or {}),
    }
