"""The call IDs a server sees through one public address.

Call-ID fields that carry the client's (PNS) ID are translated client -> public on
the way out and public -> client on the way in; the server's (PAC) IDs are never
touched. A client keeps its own ID unless another call through the same public
address to the same server already uses it (live, or decided in a stream whose call
does not exist yet). Which field carries whose ID is stated once, here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.logs import Log
from ryu_pptp_alg.records import Call, CallState, Conn
from ryu_pptp_alg.rewriter import CallIdSite
from ryu_pptp_alg.session import Described
from ryu_pptp_alg.state import GatewayState

CMT = pptp.ControlMessageType
# Fields where the client's ID is first named: the public ID is decided there.
ALLOCATING_FIELDS = frozenset({(CMT.OUTGOING_CALL_REQUEST, "call_id"),
                               (CMT.INCOMING_CALL_REPLY, "call_id")})
# The client's ID again, on the way out, and as the peer's ID on the way in.
CLIENT_ID_FIELDS_OUT = frozenset({(CMT.CALL_CLEAR_REQUEST, "call_id"),
                                  (CMT.CALL_DISCONNECT_NOTIFY, "call_id")})
CLIENT_ID_FIELDS_IN = frozenset({(CMT.OUTGOING_CALL_REPLY, "peer_call_id"),
                                 (CMT.INCOMING_CALL_CONNECTED, "peer_call_id"),
                                 (CMT.WAN_ERROR_NOTIFY, "peer_call_id")})
# A call reply names its call (the client's ID) just before its result: the result of a
# call the gateway cannot carry becomes a failure, so the client never waits on it.
REPLY_CALL = (CMT.OUTGOING_CALL_REPLY, "peer_call_id")
REPLY_RESULT = (CMT.OUTGOING_CALL_REPLY, "result_code")
REFUSED_RESULT = pptp.OutgoingCallResult.GENERAL_ERROR << 8 | pptp.GeneralErrorCode.NO_RESOURCE


# Why a call its server connected is refused (Gateway._refusal; counted there).
NO_PATH = "no way to carry its GRE (the switch refused the flows)"
STORE_UNAVAILABLE = "the state store cannot write (it would not survive a failover)"


class CallIdSpace:
    def __init__(self, state: GatewayState, counters: Counter[str], log: Log,
                 refused: Callable[[Call], str] | None = None) -> None:
        self.state = state
        self.counters = counters
        self.log = log
        self.refused = refused  # why a call is refused, "" if it is not
        self._reply: tuple[int, int, int] | None = None  # (conn, message seq, call ID)

    def to_server(self, conn: Conn, site: CallIdSite) -> int:
        """The value a call-ID field of the client's stream leaves with."""
        if conn.inbound:  # the inside server's GRE keys are never ambiguous here
            return site.value
        field = (site.message_type, site.field)
        if field in ALLOCATING_FIELDS:
            return self.allocate(conn, site.value)
        if field in CLIENT_ID_FIELDS_OUT:
            return conn.public_id(site.value)
        return site.value

    def to_client(self, conn: Conn, site: CallIdSite) -> int:
        field = (site.message_type, site.field)
        if field == REPLY_CALL:
            self._reply = (conn.id, site.message_seq, site.value)
        elif field == REPLY_RESULT:
            return self._reply_result(conn, site)
        if field in CLIENT_ID_FIELDS_IN:
            return conn.client_id(site.value)
        return site.value

    def _reply_result(self, conn: Conn, site: CallIdSite) -> int:
        """A call reply's result and error codes: "General Error, No-Resource" where the
        server connected a call that is refused: nothing can carry it (the switch refused
        its flows), or the state store cannot write (it would not survive a failover)."""
        reply, self._reply = self._reply, None
        if reply is None or reply[:2] != (conn.id, site.message_seq) \
                or site.value >> 8 != pptp.OutgoingCallResult.CONNECTED or self.refused is None:
            return site.value
        call = self.state.call_by(conn, "public_call_id", reply[2])
        if call is None or call.state != CallState.REQUESTED:
            return site.value
        reason = self.refused(call)
        if not reason:
            return site.value
        self.log.warning("%s: call %d: %s: its reply goes to the client as a failure "
                         "(General Error, No-Resource)", Described(conn), call.client_call_id,
                         reason)
        return REFUSED_RESULT

    def allocate(self, conn: Conn, client_id: int) -> int:
        """The call ID the server will see for ``client_id``."""
        if conn.id_map is not None and client_id in conn.id_map:
            return conn.id_map[client_id]  # a duplicate request: keep its mapping
        state = self.state
        live = state.call_by(conn, "client_call_id", client_id)
        if live is not None:  # a request reusing a live call's ID: the tracker refuses it
            return live.public_call_id
        server, public = conn.server_ip, conn.public_ip
        inward = state.idx.inward
        pending = state.idx.pending_ids
        public_id = client_id
        for _ in range(0x10000):
            slot = (server, public, public_id)
            if slot not in inward and slot not in pending:
                break
            public_id = (public_id + 1) & 0xFFFF
        else:
            self.counters["call_ids_exhausted"] += 1
            return client_id
        state.reserve_id(conn, client_id, public_id)
        if public_id != client_id:
            self.counters["call_ids_translated"] += 1
            self.log.info("%s: call ID %d translated to %d", Described(conn), client_id,
                          public_id)
        return public_id
