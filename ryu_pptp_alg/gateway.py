"""Per-datapath ALG logic: plain Python, no eventlet, no sockets.

A ``Gateway`` turns switch events (packet-in, barrier reply, flow removed,
flow stats, a clock tick) into lists of OpenFlow messages (Ryu parser objects
with no datapath bound) and keeps the session table of one NAT switch. The Ryu
glue in ``app.py`` only delivers events and sends messages.

Outbound PPTP: the client's control connection is NATed here, packet by
packet, to a public address; its messages are tracked; when a call comes up its
GRE gets address-rewrite flows in the switch (see ``pairs.py``).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg, pipeline
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.errors import PptpError, ReassemblyOverflow
from ryu_pptp_alg.codec.frame import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    IP_PROTO_GRE,
    IP_PROTO_TCP,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    Ethernet,
    FrameError,
    Ipv4,
    Tcp,
    build_ethernet,
    build_ipv4,
    build_tcp,
    parse_arp,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
)
from ryu_pptp_alg.codec.gre import GreError, peek_call_id, with_call_id
from ryu_pptp_alg.config import GatewayConfig, PortForward, SwitchProfile, Timeouts
from ryu_pptp_alg.neighbours import Neighbours, Side
from ryu_pptp_alg.pairs import (
    GreKey,
    Hop,
    Key,
    PairState,
    PairTable,
    delete_inward_flow,
    delete_pair_flows,
    delete_via_controller_flow,
    inward_flow,
    outward_flow,
    via_controller_flow,
)
from ryu_pptp_alg.rewriter import SEQ_MOD, CallIdSite, StreamRewriter
from ryu_pptp_alg.session import (
    Call,
    CallState,
    ConnState,
    ControlConnection,
    Described,
    Direction,
    Event,
    EventKind,
    Tracker,
    describe,
)

Clock = Callable[[], float]
CMT = pptp.ControlMessageType
# Call-ID fields that carry the client's (PNS) ID: translated client -> public on the way
# out (Outgoing-Call-Request and Incoming-Call-Reply allocate it), public -> client on
# the way in. The server's (PAC) IDs are never touched.
ALLOCATING_FIELDS = {(CMT.OUTGOING_CALL_REQUEST, "call_id"), (CMT.INCOMING_CALL_REPLY, "call_id")}
CLIENT_ID_FIELDS_OUT = {(CMT.CALL_CLEAR_REQUEST, "call_id"),
                        (CMT.CALL_DISCONNECT_NOTIFY, "call_id")}
CLIENT_ID_FIELDS_IN = {(CMT.OUTGOING_CALL_REPLY, "peer_call_id"),
                       (CMT.INCOMING_CALL_CONNECTED, "peer_call_id"),
                       (CMT.WAN_ERROR_NOTIFY, "peer_call_id")}
INSIDE = "inside"
OUTSIDE = "outside"
FIRST_DYNAMIC_PORT = 1024
GRE_UNMATCHED_COOKIE = pipeline.cookie(pipeline.CookieKind.PIPELINE,
                                       pipeline.PipelineFlow.GRE_UNMATCHED)


class Gateway:
    def __init__(self, config: GatewayConfig, timeouts: Timeouts | None = None,
                 clock: Clock = time.time, logger: logging.Logger | None = None) -> None:
        self.config = config
        self.timeouts = timeouts or Timeouts()
        self.clock = clock
        self.log = logger or logging.getLogger(f"ryu_pptp_alg.gateway.{config.dpid:x}")
        self.connected = False
        self.connected_since: float | None = None
        self.counters: Counter[str] = Counter()
        self.mac = config.gateway_mac
        self.inside_ports = frozenset(config.inside_ports)
        self.outside_ports = frozenset(config.outside_ports)
        self.public_addresses = frozenset(config.public_addresses)
        self.neighbours = Neighbours(
            self.mac,
            {INSIDE: Side(INSIDE, config.inside_ports, (config.inside_address.ip,)),
             OUTSIDE: Side(OUTSIDE, config.outside_ports, config.public_addresses)},
            self.timeouts.arp_retry, self.timeouts.arp_give_up)
        self.conns_inside: dict[tuple[IPv4Address, int, IPv4Address, int], ControlConnection] = {}
        self.conns_outside: dict[tuple[IPv4Address, int, IPv4Address, int],
                                 ControlConnection] = {}
        self.pairs = PairTable()
        # Call IDs decided in the stream whose call does not exist yet: (key..., ID) -> conn.
        self._pending_ids: dict[tuple[IPv4Address, IPv4Address, int], ControlConnection] = {}
        self.forwards: dict[IPv4Address, IPv4Address] = {
            f.public: f.inside for f in config.port_forwards}
        self.switch_counters: Counter[str] = Counter()  # read from the switch's flow stats
        # Indexes for choosing public addresses and ports (outbound connections): the
        # public address a client uses towards a server, with the client's connection
        # count there once it has more than one. Who uses a (server, public) key is on the
        # key (``GreKey.users``).
        self._client_public: dict[tuple[IPv4Address, IPv4Address],
                                  IPv4Address | tuple[IPv4Address, int]] = {}
        self._port_cursor: dict[tuple[IPv4Address, int, IPv4Address], int] = {}
        self._pool: list[IPv4Address] = []
        self._refresh_pool()
        self.held: dict[int, ControlConnection] = {}  # barrier xid -> connection held for it
        self._held_out: dict[ControlConnection, list[Any]] = {}  # its packet-outs, waiting
        # Whether flow changes need a barrier to stay ahead of later packet-outs.
        self.fenced = config.switch_profile is not SwitchProfile.OVS
        # Bound once: every connection's rewriters share them.
        self._to_server_decider = self._decide_to_server
        self._to_client_decider = self._decide_to_client
        self._next_xid = 1
        self._last_stats = 0.0

    @property
    def dpid(self) -> int:
        return self.config.dpid

    # --- switch connection ---------------------------------------------------------------

    def datapath_up(self) -> list[Any]:
        """The switch connected (or reconnected): rebuild our pipeline and live calls' flows."""
        self.connected = True
        self.connected_since = self.clock()
        self.counters["connects"] += 1
        self.log.info("%s connected: installing PPTP pipeline, %d GRE pairs", self.config.label,
                      len(self.pairs))
        msgs = [*pipeline.reset_flows(), *pipeline.static_flows(self.config)]
        for key in self.pairs.keys.values():
            key.via_controller = False
            key.fast_pair = None
        for pair in self.pairs:
            pair.fast = False
            if pair.state == PairState.INSTALLED:
                msgs.append(outward_flow(pair, self.mac, self.timeouts.gre_idle))
        for addresses in list(self.pairs.keys):
            msgs.extend(self._reconcile(addresses))
        msgs.append(ofmsg.barrier())
        # Barriers sent to the old connection will never be answered: release now.
        for conn in self.held.values():
            msgs.extend(self._held_out.pop(conn, []))
        self.held.clear()
        return msgs

    def datapath_down(self) -> None:
        if self.connected:
            self.log.warning("%s disconnected; %d control connections kept", self.config.label,
                             len(self.conns_inside))
        self.connected = False
        self.connected_since = None

    # --- packet-in -----------------------------------------------------------------------

    def packet_in(self, in_port: int, data: bytes, cookie: int) -> list[Any]:
        """A packet the pipeline sent to the controller."""
        self.counters["packet_in"] += 1
        try:
            eth = parse_ethernet(data)
            if eth.ethertype == ETH_TYPE_ARP:
                return self.neighbours.handle_arp(parse_arp(eth.payload), in_port)
            if eth.ethertype != ETH_TYPE_IPV4:
                return self._drop("unexpected_ethertype", "ethertype %#x", eth.ethertype)
            ip = parse_ipv4(eth.payload)
            if ip.is_fragment:
                return self._drop("ip_fragment", "fragment from %s", ip.src)
            if ip.protocol == IP_PROTO_TCP:
                return self._tcp(in_port, eth, ip, parse_tcp(ip.payload, ip.src, ip.dst))
            if ip.protocol == IP_PROTO_GRE:
                return self._gre(in_port, ip, len(data))
            return self._drop("unexpected_protocol", "IP protocol %d", ip.protocol)
        except FrameError as err:
            return self._drop("bad_frame", "port %d: %s", in_port, err)

    def _drop(self, counter: str, fmt: str, *args: Any) -> list[Any]:
        self.counters[counter] += 1
        self.log.debug("drop (%s): " + fmt, counter, *args)
        return []

    # --- control connection (TCP/1723) ---------------------------------------------------

    def _tcp(self, in_port: int, eth: Ethernet, ip: Ipv4, tcp: Tcp) -> list[Any]:
        now = self.clock()
        from_inside = in_port in self.inside_ports
        if not from_inside and in_port not in self.outside_ports:
            return self._drop("tcp_unhandled", "TCP on port %d, neither side", in_port)
        msgs: list[Any] = []
        if from_inside or self.config.outside_next_hop is None:
            msgs.extend(self.neighbours.learn(ip.src, eth.src, in_port))
        key = (ip.src, tcp.src_port, ip.dst, tcp.dst_port)
        conn = (self.conns_inside if from_inside else self.conns_outside).get(key)
        if conn is None:
            opening = tcp.has(TCP_SYN) and not tcp.flags & (TCP_ACK | TCP_RST) \
                and tcp.dst_port == pptp.PPTP_PORT
            if opening and from_inside:
                conn = self._open_outbound(ip, tcp, now)
            elif opening and ip.dst in self.forwards:
                conn = self._open_inbound(ip, tcp, now)
            else:
                return msgs + self._drop("tcp_no_session", "%s:%d -> %s:%d", ip.src,
                                         tcp.src_port, ip.dst, tcp.dst_port)
        if ip.ttl <= 1:
            return msgs + self._drop("ttl_expired", "from %s", ip.src)
        conn.last_seen = now
        from_client = from_inside != conn.inbound  # the PNS's side of the connection
        if tcp.has(TCP_SYN):
            self._start_stream(conn, tcp, from_client)
        segments, events = self._rewrite(conn, tcp, from_client)
        flow_msgs, hold = self._apply(conn, events)
        out: list[Any] = []
        for segment in segments:
            if from_inside:  # the source becomes the public address (and port)
                packet = self._ip_tcp(ip, segment, src=(conn.public_ip, conn.public_port))
                out.extend(self.neighbours.send_via(self._next_hop(ip.dst), OUTSIDE,
                                                    self._sender(packet), now))
            else:  # the destination becomes the inside end
                inside_ip, inside_port = conn.inside
                packet = self._ip_tcp(ip, segment, dst=(inside_ip, inside_port))
                out.extend(self.neighbours.send_via(inside_ip, INSIDE, self._sender(packet),
                                                    now))
        if from_client:
            msgs.extend([*flow_msgs, *out])
        else:
            msgs.extend(self._from_server(conn, flow_msgs, hold, out))
        msgs.extend(self._tcp_close(conn, tcp))
        return msgs

    def _from_server(self, conn: ControlConnection, flow_msgs: list[Any], hold: bool,
                     out: list[Any]) -> list[Any]:
        """The server's segments: a reply that set up a call waits for its flows (on a
        switch that runs messages in order, being sent after them is enough)."""
        msgs = list(flow_msgs)
        waiting = self._held_out.get(conn)
        if hold and waiting is None and self.fenced:
            xid = self._xid()
            barrier = ofmsg.barrier()
            barrier.set_xid(xid)
            waiting = self._held_out[conn] = []
            self.held[xid] = conn
            msgs.append(barrier)
        if waiting is not None:
            waiting.extend(out)  # keep the stream in order behind the held reply
        else:
            msgs.extend(out)
        return msgs

    def _ip_tcp(self, ip: Ipv4, tcp: Tcp, src: tuple[IPv4Address, int] | None = None,
                dst: tuple[IPv4Address, int] | None = None) -> bytes:
        """``ip`` carrying ``tcp``, with one end translated and the TTL decremented."""
        src_ip, src_port = src or (ip.src, tcp.src_port)
        dst_ip, dst_port = dst or (ip.dst, tcp.dst_port)
        segment = tcp._replace(src_port=src_port, dst_port=dst_port)
        return build_ipv4(ip._replace(src=src_ip, dst=dst_ip, ttl=ip.ttl - 1,
                                      payload=build_tcp(segment, src_ip, dst_ip)))

    def _start_stream(self, conn: ControlConnection, tcp: Tcp, from_client: bool) -> None:
        """SYN or SYN-ACK: the direction's stream starts after it."""
        if from_client and conn.to_server is None:
            conn.to_server = (tcp.seq + 1) % SEQ_MOD
        elif not from_client and conn.to_client is None:
            conn.to_client = (tcp.seq + 1) % SEQ_MOD

    def barrier_reply(self, xid: int) -> list[Any]:
        """A barrier we sent was answered: release what waited for it."""
        conn = self.held.pop(xid, None)
        return [] if conn is None else self._held_out.pop(conn, [])

    def _open_outbound(self, ip: Ipv4, tcp: Tcp, now: float) -> ControlConnection:
        public_ip = self._choose_public(ip.src, ip.dst)
        public_port = self._choose_port(public_ip, tcp.src_port, ip.dst, tcp.dst_port)
        return self._register(ControlConnection(
            ip.src, tcp.src_port, ip.dst, tcp.dst_port, public_ip, public_port,
            created=now, last_seen=now, direction=Direction.OUTBOUND))

    def _open_inbound(self, ip: Ipv4, tcp: Tcp, now: float) -> ControlConnection:
        return self._register(ControlConnection(
            ip.src, tcp.src_port, self.forwards[ip.dst], pptp.PPTP_PORT, ip.dst,
            pptp.PPTP_PORT, created=now, last_seen=now, direction=Direction.INBOUND))

    def _register(self, conn: ControlConnection) -> ControlConnection:
        self.conns_inside[conn.inside_key] = conn
        self.conns_outside[conn.outside_key] = conn
        if not conn.inbound:
            self._track_outbound(conn, +1)
        self.counters[f"control_connections_{conn.direction}"] += 1
        self.log.debug("control connection %s", Described(conn))
        return conn

    def _choose_public(self, client: IPv4Address, server: IPv4Address) -> IPv4Address:
        """Keep a client on one address per server; else a pool address no other client
        uses towards that server (addresses that forward inbound PPTP last), so its GRE
        pair stays unambiguous; else the default."""
        known = self._client_public.get((client, server))
        if known is not None:
            return known if isinstance(known, IPv4Address) else known[0]
        free = self._free_pool.get(server)
        if free is None:
            free = self._free_pool[server] = list(range(len(self._pool)))
        while free:  # a heap of pool positions; entries of addresses now in use are stale
            address = self._pool[free[0]]
            key = self.pairs.keys.get((server, address))
            if key is None or key.users is None:
                return address
            heapq.heappop(free)
        return self.config.default_public_address

    def _choose_port(self, public: IPv4Address, port: int, server: IPv4Address,
                     server_port: int) -> int:
        """The client's own source port unless another connection holds it; then the next
        free one after a per-(server, public address) cursor (amortised O(1))."""
        def free(candidate: int) -> bool:
            reserved = candidate == pptp.PPTP_PORT and public in self.forwards
            return not reserved and \
                (server, server_port, public, candidate) not in self.conns_outside
        if free(port):
            return port
        cursor_key = (server, server_port, public)
        candidate = self._port_cursor.get(cursor_key, FIRST_DYNAMIC_PORT)
        for _ in range(65536):
            following = candidate + 1 if candidate < 65535 else FIRST_DYNAMIC_PORT
            if free(candidate):
                self._port_cursor[cursor_key] = following
                return candidate
            candidate = following
        raise RuntimeError(f"no free port on {public} towards {server}")

    def _track_outbound(self, conn: ControlConnection, delta: int) -> None:
        """Keep the indexes behind _choose_public: who uses which public address. A client
        keeps one public address per server, so its connection count there is the count
        on that (server, public) key too."""
        pair_key = (conn.client_ip, conn.server_ip)
        known = self._client_public.get(pair_key)
        if known is None:
            public, count = conn.public_ip, 0
        elif isinstance(known, IPv4Address):
            public, count = known, 1
        else:
            public, count = known
        count += delta
        if count > 1:
            self._client_public[pair_key] = (public, count)
        elif count == 1:
            self._client_public[pair_key] = public
        else:
            self._client_public.pop(pair_key, None)
        key_addresses = (conn.server_ip, conn.public_ip)
        client = conn.client_ip
        key: GreKey | None
        if count > 0:  # the client uses the key: one address, or a set once shared
            key = self.pairs.key(key_addresses)
            users = key.users
            if users is None:
                key.users = client
            elif isinstance(users, set):
                users.add(client)
            elif users != client:
                key.users = {users, client}
            return
        key = self.pairs.keys.get(key_addresses)
        if key is None:
            return
        users = key.users
        if isinstance(users, set):
            users.discard(client)
            if len(users) == 1:
                key.users = users.pop()
            return
        if users != client:
            return
        key.users = None
        self.pairs.drop_if_unused(key_addresses)
        free = self._free_pool.get(conn.server_ip)
        position = self._pool_position.get(conn.public_ip)
        if free is not None and position is not None:
            heapq.heappush(free, position)  # free again towards that server

    def _refresh_pool(self) -> None:
        self._pool = sorted(self.config.public_addresses, key=lambda a: a in self.forwards)
        self._pool_position = {address: i for i, address in enumerate(self._pool)}
        self._free_pool: dict[IPv4Address, list[int]] = {}  # rebuilt lazily per server

    def _next_hop(self, destination: IPv4Address) -> IPv4Address:
        return self.config.outside_next_hop or destination

    def _sender(self, ip_packet: bytes) -> Callable[[Hop], list[Any]]:
        def send(hop: Hop) -> list[Any]:
            frame = build_ethernet(Ethernet(hop.mac, self.mac, ETH_TYPE_IPV4, ip_packet))
            return [ofmsg.packet_out(frame, [ofmsg.output(hop.port)])]
        return send

    def _rewrite(self, conn: ControlConnection, tcp: Tcp,
                 from_client: bool) -> tuple[list[Tcp], list[Event]]:
        """The segments to forward for ``tcp`` (call IDs translated), and call events."""
        stream = conn.to_server if from_client else conn.to_client
        if not tcp.payload or stream is None:
            return [tcp], []
        if isinstance(stream, int):  # parked between messages: carry on from there
            stream = StreamRewriter(stream, self._to_server_decider if from_client
                                    else self._to_client_decider, conn)
        try:
            result = stream.segment(tcp.seq, tcp.payload)
        except ReassemblyOverflow as err:
            conn.count_error("reassembly_overflow")
            self.log.warning("%s: %s", describe(conn), err)
            return [], []
        parked = stream.parked()
        if from_client:
            conn.to_server = stream if parked is None else parked
        else:
            conn.to_client = stream if parked is None else parked
        if result.error is not None:
            conn.count_error("stream_desync")
            self.log.warning("%s: control stream lost sync (%s); NAT goes on, calls "
                             "on it are no longer tracked", describe(conn), result.error)
        segments = [tcp if emit.complete and emit.seq == tcp.seq and emit.payload == tcp.payload
                    else tcp._replace(seq=emit.seq, payload=emit.payload, flags=tcp.flags
                                      if emit.complete else tcp.flags & ~(TCP_FIN | TCP_PSH))
                    for emit in result.emits]
        tracker = Tracker(self.clock())
        events: list[Event] = []
        for message in result.messages:
            try:
                msg = pptp.parse(message.data)
            except PptpError as err:
                conn.count_error("bad_message")
                self.log.warning("%s: bad control message: %s", describe(conn), err)
                continue
            self.counters["control_messages"] += 1
            handle = tracker.client_message if from_client else tracker.server_message
            events.extend(handle(conn, msg))
        return segments, events

    def _decide_to_server(self, conn: ControlConnection, site: CallIdSite) -> int:
        if conn.inbound:  # the inside server's GRE keys are never ambiguous here
            return site.value
        field = (site.message_type, site.field)
        if field in ALLOCATING_FIELDS:
            return self._allocate_public_id(conn, site.value)
        if field in CLIENT_ID_FIELDS_OUT:
            return conn.public_id(site.value)
        return site.value

    def _decide_to_client(self, conn: ControlConnection, site: CallIdSite) -> int:
        if (site.message_type, site.field) in CLIENT_ID_FIELDS_IN:
            return conn.client_id(site.value)
        return site.value

    def _allocate_public_id(self, conn: ControlConnection, client_id: int) -> int:
        """The call ID the server will see: the client's own unless another call through
        the same public address to the same server already uses it."""
        if conn.id_map is not None and client_id in conn.id_map:
            return conn.id_map[client_id]  # a duplicate request: keep its mapping
        server, public = conn.server_ip, conn.public_ip
        key = self.pairs.keys.get((server, public))
        public_id = client_id
        for _ in range(0x10000):
            if (key is None or key.call(public_id) is None) \
                    and (server, public, public_id) not in self._pending_ids:
                break
            public_id = (public_id + 1) & 0xFFFF
        else:
            self.counters["call_ids_exhausted"] += 1
            return client_id
        self._pending_ids[(server, public, public_id)] = conn
        if conn.id_map is None:
            conn.id_map = {}
        conn.id_map[client_id] = public_id
        if public_id != client_id:
            self.counters["call_ids_translated"] += 1
            self.log.info("%s: call ID %d translated to %d", Described(conn), client_id,
                          public_id)
        return public_id

    def _release_public_id(self, conn: ControlConnection, call: Call) -> None:
        """The call is over: its translation goes (its index entry went with the call)."""
        if conn.id_map is not None:
            conn.id_map.pop(call.client_call_id, None)
            if not conn.id_map:
                conn.id_map = None

    def _tcp_close(self, conn: ControlConnection, tcp: Tcp) -> list[Any]:
        if not tcp.flags & (TCP_FIN | TCP_RST):
            return []
        if conn.state == ConnState.CLOSING:
            return []
        conn.state = ConnState.CLOSING
        conn.closed_at = self.clock()
        self.log.debug("control connection %s closing (%s)", Described(conn),
                       "RST" if tcp.has(TCP_RST) else "FIN")
        msgs, _ = self._apply(conn, Tracker(self.clock()).connection_closed(conn))
        return msgs

    # --- calls and their GRE pairs -------------------------------------------------------

    def _apply(self, conn: ControlConnection, events: list[Event]) -> tuple[list[Any], bool]:
        """Flow messages for call events; True when a new pair awaits confirmation."""
        msgs: list[Any] = []
        hold = False
        for event in events:
            call = event.call
            if event.kind == EventKind.CALL_REQUESTED:
                msgs.extend(self._call_requested(conn, call))
            elif event.kind == EventKind.CALL_ESTABLISHED:
                pair_msgs = self._call_established(conn, call)
                hold = hold or bool(pair_msgs)
                msgs.extend(pair_msgs)
            elif event.kind == EventKind.CALL_CLOSED:
                msgs.extend(self._call_closed(conn, call))
        return msgs, hold

    def _call_requested(self, conn: ControlConnection, call: Call) -> list[Any]:
        self.counters["calls_requested"] += 1
        self._pending_ids.pop((conn.server_ip, conn.public_ip, call.public_call_id), None)
        self._index_call(conn, call)
        inside_ip, _ = conn.inside
        outside_ip, _ = conn.outside
        pair = self.pairs.get(inside_ip, outside_ip, conn.public_ip)
        if pair is None:
            to_inside = self.neighbours.lookup(inside_ip)
            to_outside = self.neighbours.lookup(self._next_hop(outside_ip))
            if to_inside is None or to_outside is None:
                self.counters["call_without_next_hop"] += 1
                self.log.warning("%s: call %d: a next hop is unknown, no GRE flows",
                                 describe(conn), call.client_call_id)
                return []
            pair = self.pairs.add(inside_ip, outside_ip, conn.public_ip, to_inside, to_outside)
        if call not in pair.calls:
            pair.calls = (*pair.calls, call)
        call.pair = pair
        self.log.debug("%s: call %d requested as %d (pair %d)", Described(conn),
                       call.client_call_id, call.public_call_id, pair.ident)
        # Early inward GRE reaches the controller, never the drop flow; the barrier keeps
        # the request behind the flow changes on any switch.
        msgs = self._reconcile(pair.key)
        return [*msgs, ofmsg.barrier()] if msgs and self.fenced else msgs

    def _index_call(self, conn: ControlConnection, call: Call) -> None:
        """Inward GRE names the call by ``call.inward_id``, once that is known."""
        if call.inward_id is not None:
            self.pairs.key((conn.outside[0], conn.public_ip)).index_call(call)

    def _call_established(self, conn: ControlConnection, call: Call) -> list[Any]:
        self.counters["calls_established"] += 1
        self._index_call(conn, call)
        pair = call.pair
        self.log.debug("%s: call %d established, server call ID %s", Described(conn),
                       call.client_call_id, call.server_call_id)
        if pair is None:
            return []
        msgs = []
        if pair.state == PairState.PENDING:
            pair.state = PairState.INSTALLED
            msgs.append(outward_flow(pair, self.mac, self.timeouts.gre_idle))
        return msgs + self._reconcile(pair.key)

    def _reconcile(self, key_addresses: Key) -> list[Any]:
        """Make the key's inward flows fit its pairs; adds before deletes, so no GRE
        falls through to the drop flow while paths change."""
        pairs = self.pairs.sharing(key_addresses)
        key = self.pairs.key(key_addresses)
        lone = pairs[0] if len(pairs) == 1 else None
        fast = lone if lone is not None and lone.state == PairState.INSTALLED \
            and not lone.translated else None
        want_controller = bool(pairs) and fast is None
        adds: list[Any] = []
        deletes: list[Any] = []
        if want_controller and not key.via_controller:
            key.via_controller = True
            adds.append(via_controller_flow(key))
        if fast is not key.fast_pair:
            if fast is not None:
                fast.fast = True
                adds.append(inward_flow(fast, self.mac, self.timeouts.gre_idle))
            previous = key.fast_pair
            if previous is not None and previous.fast:
                previous.fast = False
                if previous in pairs:  # a removed pair's flows went with its cookie
                    deletes.append(delete_inward_flow(previous))
            key.fast_pair = fast
        if not want_controller and key.via_controller:
            key.via_controller = False
            deletes.append(delete_via_controller_flow(key))
        if not pairs:
            self.pairs.drop_if_unused(key_addresses)
        return adds + deletes

    def _call_closed(self, conn: ControlConnection, call: Call) -> list[Any]:
        self.counters["calls_closed"] += 1
        self.log.debug("%s: call %d closed", Described(conn), call.client_call_id)
        key_addresses = (conn.outside[0], conn.public_ip)
        key = self.pairs.keys.get(key_addresses)
        if key is not None:
            key.unindex_call(call)
        self._release_public_id(conn, call)
        if call in conn.calls:  # a long-lived connection keeps only its live calls
            conn.calls = tuple(c for c in conn.calls if c is not call)
        pair = call.pair
        if pair is None:
            self.pairs.drop_if_unused(key_addresses)
            return []
        if call in pair.calls:
            pair.calls = tuple(c for c in pair.calls if c is not call)
        msgs = []
        if not pair.calls:
            self.pairs.remove(pair)
            msgs.append(delete_pair_flows(pair))
        return msgs + self._reconcile(pair.key)

    # --- GRE through the controller ------------------------------------------------------

    def _gre(self, in_port: int, ip: Ipv4, frame_len: int) -> list[Any]:
        """Inward GRE the switch could not place: the key's call ID picks the call."""
        if in_port not in self.outside_ports or ip.dst not in self.public_addresses:
            return self._drop("gre_unexpected", "%s -> %s on port %d", ip.src, ip.dst, in_port)
        try:
            call_id = peek_call_id(ip.payload)
        except GreError as err:
            return self._drop("bad_gre", "%s -> %s: %s", ip.src, ip.dst, err)
        if ip.ttl <= 1:
            return self._drop("ttl_expired", "GRE from %s", ip.src)
        key = self.pairs.keys.get((ip.src, ip.dst))
        call = None if key is None else key.call(call_id)
        if call is None or call.pair is None:
            return self._drop("gre_no_call", "%s -> %s call ID %d", ip.src, ip.dst, call_id)
        call.slow_packets += 1
        call.slow_bytes += frame_len
        self.counters["gre_via_controller"] += 1
        inside_id = call.inside_id
        payload = ip.payload if inside_id is None or inside_id == call_id \
            else with_call_id(ip.payload, inside_id)
        rewritten = ip._replace(dst=call.pair.inside_ip, ttl=ip.ttl - 1, payload=payload)
        return self._sender(build_ipv4(rewritten))(call.pair.to_inside)

    # --- switch feedback and time --------------------------------------------------------

    def flow_removed(self, cookie: int, reason: int, packets: int, octets: int) -> list[Any]:
        pair = self.pairs.by_cookie(cookie)
        if pair is None:
            return []
        pair.add_removed(packets, octets)
        if reason not in (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_HARD_TIMEOUT):
            return []
        self.log.info("GRE pair %d (%s - %s via %s) idle: its calls end", pair.ident,
                      pair.inside_ip, pair.outside_ip, pair.public_ip)
        self.counters["gre_idle_timeouts"] += 1
        msgs: list[Any] = []
        for conn in self.conns_inside.values():
            for call in conn.live_calls:
                if call.pair is pair:
                    call.state = CallState.CLOSED
                    msgs.extend(self._call_closed(conn, call))
        return msgs

    def flow_stats(self, entries: list[tuple[int, dict[str, Any], int, int]]) -> None:
        """(cookie, match, packets, bytes) of our flows in the GRE table."""
        for cookie, match, packets, octets in entries:
            if cookie == GRE_UNMATCHED_COOKIE:
                self.switch_counters["gre_unmatched_dropped"] = packets
                continue
            pair = self.pairs.by_cookie(cookie)
            if pair is None:
                continue
            direction = "outward" if match.get("ipv4_src") == str(pair.inside_ip) \
                else "inward"
            pair.set_live(direction, packets, octets)

    def tick(self) -> list[Any]:
        """Timeouts, ARP retries and statistics requests; call about once a second."""
        now = self.clock()
        msgs = self.neighbours.tick(now)
        for conn in list(self.conns_inside.values()):
            if conn.state == ConnState.CLOSING:
                if now - (conn.closed_at or now) >= self.timeouts.closing_linger:
                    self._forget(conn)
            elif now - conn.last_seen >= self.timeouts.control_idle:
                self.log.info("control connection %s idle for %ds: torn down", describe(conn),
                              self.timeouts.control_idle)
                self.counters["control_idle_timeouts"] += 1
                events = Tracker(now).connection_closed(conn)
                msgs.extend(self._apply(conn, events)[0])
                self._forget(conn)
        if self.connected and now - self._last_stats >= self.timeouts.stats_interval:
            self._last_stats = now
            msgs.append(parser.OFPFlowStatsRequest(
                None, table_id=pipeline.TABLE_GRE, out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY, cookie=pipeline.COOKIE_TAG,
                cookie_mask=pipeline.COOKIE_TAG_MASK))
        return msgs

    def _forget(self, conn: ControlConnection) -> None:
        for public_id in (conn.id_map or {}).values():  # decided, but no call came of it
            slot = (conn.server_ip, conn.public_ip, public_id)
            if self._pending_ids.get(slot) is conn:
                del self._pending_ids[slot]
        conn.id_map = None
        if self.conns_inside.pop(conn.inside_key, None) is not None and not conn.inbound:
            self._track_outbound(conn, -1)
        self.conns_outside.pop(conn.outside_key, None)

    def _xid(self) -> int:
        xid = self._next_xid
        self._next_xid = self._next_xid % 0x7FFFFFFF + 1
        return 0x80000000 | xid

    # --- port forwards -------------------------------------------------------------------

    def forward_rows(self) -> list[dict[str, Any]]:
        return [{"dpid": self.dpid, "public": str(public), "inside": str(inside),
                 "sessions": sum(c.inbound and c.public_ip == public
                                 for c in self.conns_inside.values())}
                for public, inside in sorted(self.forwards.items())]

    def add_forward(self, forward: PortForward) -> None:
        """Forward inbound PPTP to ``forward.public`` to ``forward.inside`` (validated)."""
        if forward.public in self.forwards:
            raise ValueError(f"{forward.public} is already forwarded to "
                             f"{self.forwards[forward.public]}")
        self.forwards[forward.public] = forward.inside
        self._refresh_pool()
        self.log.info("port forward %s -> %s added", forward.public, forward.inside)

    def remove_forward(self, public: IPv4Address) -> list[Any]:
        """Stop forwarding ``public``; its control connections and calls are torn down."""
        if public not in self.forwards:
            raise KeyError(public)
        inside = self.forwards.pop(public)
        self._refresh_pool()
        msgs: list[Any] = []
        for conn in list(self.conns_inside.values()):
            if conn.inbound and conn.public_ip == public:
                msgs.extend(self._apply(conn, Tracker(self.clock()).connection_closed(conn))[0])
                self._forget(conn)
                self.counters["forward_sessions_torn_down"] += 1
        self.log.info("port forward %s -> %s removed", public, inside)
        return msgs

    # --- reporting -----------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        """Rows of the REST session table, one per control connection."""
        return [conn.row(self.dpid) for conn in self.conns_inside.values()]

    def status(self) -> dict[str, Any]:
        config = self.config
        return {
            "dpid": config.dpid,
            "name": config.name,
            "connected": self.connected,
            "connected_since": self.connected_since,
            "gateway_mac": self.mac,
            "switch_profile": str(config.switch_profile),
            "inside_ports": list(config.inside_ports),
            "outside_ports": list(config.outside_ports),
            "inside_address": str(config.inside_address),
            "public_addresses": [str(a) for a in config.public_addresses],
            "port_forwards": self.forward_rows(),
            "control_connections": len(self.conns_inside),
            "gre_pairs": len(self.pairs),
            "counters": dict(sorted((self.counters + self.neighbours.counters).items())),
            "switch_counters": dict(sorted(self.switch_counters.items())),
        }
