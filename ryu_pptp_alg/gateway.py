"""Per-datapath ALG logic: plain Python, no eventlet, no sockets.

A ``Gateway`` turns switch events (packet-in, barrier reply, flow removed, flow
stats, a clock tick) into lists of OpenFlow messages (Ryu parser objects with no
datapath bound) and keeps the session table of one NAT switch. The Ryu glue in
``app.py`` only delivers events and sends messages.

It dispatches and forwards the control connections (TCP/1723, NATed here packet by
packet); the parts with one concern each do the rest: ``state`` (records and their
indexes), ``session.Tracker`` (RFC 2637), ``callids`` (the call IDs a server sees),
``pool`` (public addresses and ports), ``pairs.GrePaths`` (the GRE table),
``fence`` (barriers), ``neighbours`` (ARP) and ``flowtable`` (warm reconnect).
Records changed by an event are taken by the caller (``take_changes``) and written to
the state store before the event's messages leave, so a restart loses no call.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg, pipeline, seqshift
from ryu_pptp_alg import records as rec
from ryu_pptp_alg.callids import NO_PATH, STORE_UNAVAILABLE, CallIdSpace
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
from ryu_pptp_alg.config import GatewayConfig, Limits, PortForward, Rates, Timeouts
from ryu_pptp_alg.counters import CONNECTION_ERROR_PREFIX
from ryu_pptp_alg.fence import Fence
from ryu_pptp_alg.flowtable import FlowEntry, diff, entry_of
from ryu_pptp_alg.logs import GatewayLog, log_call
from ryu_pptp_alg.neighbours import Neighbours, Side
from ryu_pptp_alg.pairs import GrePaths
from ryu_pptp_alg.pool import AddressPool
from ryu_pptp_alg.records import CallState, Conn, ConnState, Hop, Path, StreamMark
from ryu_pptp_alg.rewriter import COOKIE, MAX_EMIT, SEQ_MOD, StreamRewriter
from ryu_pptp_alg.session import (
    CloseReason,
    Described,
    Event,
    EventKind,
    Tracker,
    call_row,
    conn_row,
    describe,
    timestamp,
)
from ryu_pptp_alg.state import GatewayState

Clock = Callable[[], float]
INSIDE = "inside"
OUTSIDE = "outside"
GRE_UNMATCHED_COOKIE = pipeline.cookie(pipeline.CookieKind.PIPELINE,
                                       pipeline.PipelineFlow.GRE_UNMATCHED)
# A restored stream that shows no message start in this many segments cannot be
# followed: the connection is reset (both ends) rather than left half-tracked.
RESYNC_SEGMENTS = 32
# Times bytes injected into a control stream are sent (once a tick) until acknowledged.
INJECTION_TRIES = 5


class Gateway:
    def __init__(self, config: GatewayConfig, timeouts: Timeouts | None = None,
                 clock: Clock = time.time, logger: logging.Logger | None = None,
                 limits: Limits | None = None, rates: Rates | None = None) -> None:
        self.config = config
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self.rates = rates or Rates()
        self.metered = config.capabilities.meters
        # Without meters in the switch: token buckets here, as the meters would be (one
        # per class of packet-in, by the cookie of the flow that sent it; new connections
        # one per port). Transient: a restart refills them.
        self._buckets: dict[tuple[str, int | None], TokenBucket] = {
            (kind, None): TokenBucket(rate) for kind, rate in (
            ("control", self.rates.control), ("gre", self.rates.gre))}
        for port in (*config.inside_ports, *config.outside_ports):
            for kind in pipeline.PER_PORT:
                self._buckets[(kind, port)] = TokenBucket(getattr(self.rates, kind))
        self.clock = clock
        self.log = GatewayLog(  # every line names its gateway
            logger or logging.getLogger(f"ryu_pptp_alg.gateway.{config.dpid:x}"),
            config.name, config.dpid)
        self.connected = False
        self.connected_since: float | None = None
        self.counters: Counter[str] = Counter()
        self.mac = config.gateway_mac
        self.inside_ports = frozenset(config.inside_ports)
        self.inside_network = config.inside_address.network
        self.outside_ports = frozenset(config.outside_ports)
        self.public_addresses = frozenset(config.public_addresses)
        self.neighbours = Neighbours(
            self.mac,
            {INSIDE: Side(INSIDE, config.inside_ports, (config.inside_address.ip,)),
             OUTSIDE: Side(OUTSIDE, config.outside_ports, config.public_addresses)},
            self.timeouts.arp_retry, self.timeouts.arp_give_up, config.inside_address.network,
            log=self.log)
        self.state = rec_state = GatewayState()
        self.fence = Fence(config.capabilities.barriers)
        self.paths = GrePaths(rec_state, self.mac, self.timeouts.gre_idle,
                              config.public_addresses, self.fence.xid, self.metered)
        self.pool = AddressPool(rec_state, config.public_addresses)
        self.call_ids = CallIdSpace(rec_state, self.counters, self.log, self._refusal)
        # The state store cannot write (high availability: etcd without quorum): new
        # control connections and calls are refused, those up go on (Alg.set_store_down).
        self.store_down = False
        self.forwards: dict[IPv4Address, IPv4Address] = {}
        self._apply_forwards()
        self.switch_counters: Counter[str] = Counter()  # read from the switch's flow stats
        # Hosts whose new connections the switch drops (``_block``), until when; transient
        # (a restarted controller lifts them).
        self.blocked: dict[IPv4Address, float] = {}
        # Told each established call's set-up time in seconds (the metrics' histogram).
        self.on_call_setup: Callable[[float], None] | None = None
        # Bound once: every connection's rewriters share them.
        self._to_server_decider = self.call_ids.to_server
        self._to_client_decider = self.call_ids.to_client
        self._last_stats = 0.0
        self._sync_xid: int | None = None  # the flow-stats request a reconnect waits for
        self._sync_entries: list[FlowEntry] = []
        self._resync_misses: dict[tuple[int, bool], int] = {}
        self.last_restore: dict[str, Any] | None = None
        self.last_sync: dict[str, Any] | None = None

    @property
    def dpid(self) -> int:
        return self.config.dpid

    # --- state: restore, changes, checks -------------------------------------------------

    def restore(self, stored: dict[str, dict[Any, Any]], source: str = "") -> None:
        """Take over records a previous controller kept. Streams are picked up where the
        records leave them (resynchronised on the PPTP framing where they lag), timers
        start afresh, and the switch's flows are compared with the records on connect."""
        now = self.clock()
        state = self.state
        state.load(stored)
        state.idx = state.rebuild()
        for key, flows in self.paths.wanted_all().items():
            state.set_key_flows(key, flows)
        self._apply_forwards()
        for pair in state.pairs.values():  # neighbours the GRE flows already name
            self.neighbours.table.setdefault(pair.inside_ip, pair.to_inside)
            self.neighbours.table.setdefault(self._next_hop(pair.outside_ip), pair.to_outside)
        for conn in state.conns.values():
            conn.last_seen = now
            if conn.closed_at is not None:
                conn.closed_at = now
        counts = state.counts()
        self.last_restore = {"at": timestamp(now), "source": source, **counts,
                             "connections_resynchronised": 0, "connections_closed": 0}
        if counts["control_connections"]:
            self.log.info("restored %d control connections, %d calls, %d GRE pairs%s",
                          counts["control_connections"], counts["calls"],
                          counts["gre_pairs"], f" ({source})" if source else "")

    def take_changes(self, lazy: bool = False) -> list[tuple[str, Any, Any]]:
        return self.state.take_changes(lazy)

    def problems(self) -> list[str]:
        """Indexes that differ from their rebuilt form, records that refer to nothing."""
        return self.state.problems(self.paths.wanted_all())

    # --- switch connection ---------------------------------------------------------------

    def datapath_up(self) -> list[Any]:
        """The switch connected (or reconnected): read its flows of ours; ``flow_stats``
        then makes them what the records want, touching nothing that is right."""
        self.connected = True
        self.connected_since = self.clock()
        self.counters["connects"] += 1
        self.log.info("connected: reading its flows (%d GRE pairs kept)",
                      len(self.state.pairs))
        xid = self.fence.xid()
        self._sync_xid = xid
        self._sync_entries = []
        request = parser.OFPFlowStatsRequest(
            None, table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
            cookie=pipeline.COOKIE_TAG, cookie_mask=pipeline.COOKIE_TAG_MASK)
        request.set_xid(xid)
        meters = pipeline.meter_mods(self.config, self.rates) if self.metered else []
        # Barriers sent to the old connection will never be answered: release now.
        return [*meters, request, *self.fence.release_all()]

    def datapath_down(self) -> None:
        if self.connected:
            self.log.warning("disconnected; %d control connections kept",
                             len(self.state.conns))
        self.connected = False
        self.connected_since = None
        self._sync_xid = None

    def wanted_flows(self) -> list[Any]:
        tracked = [flow for conn in self.state.conns.values() if _answered(conn)
                   for flow in pipeline.tracked_flows(conn, self.mac, self.metered)]
        now = self.clock()
        blocks = [pipeline.block_flow(host, max(1, round(until - now)))
                  for host, until in self.blocked.items()]
        return [*pipeline.static_flows(self.config, self.metered), *tracked,
                *self.paths.flows(), *blocks]

    def _sync_flows(self, entries: list[FlowEntry]) -> list[Any]:
        changes = diff(self.wanted_flows(), [e for e in entries if pipeline.ours(e.cookie)])
        self.last_sync = {"at": timestamp(self.clock()), "flows_kept": changes.kept,
                          "flows_added": len(changes.adds),
                          "flows_deleted": len(changes.deletes)}
        self.log.info("flows: %d kept, %d added, %d deleted",
                      changes.kept, len(changes.adds), len(changes.deletes))
        if self.last_restore is not None and "flows_kept" not in self.last_restore:
            self.last_restore.update(self.last_sync)
        adds = [self.paths.track(m) if m.table_id == pipeline.TABLE_GRE else m
                for m in changes.adds]
        return [*adds, *changes.deletes, ofmsg.barrier()]

    def error(self, xid: int, err_type: int, code: int) -> list[Any]:
        return self.fence.sequence(self._error(xid, err_type, code))

    def _error(self, xid: int, err_type: int, code: int) -> list[Any]:
        """The switch refused a message of ours. A GRE flow's refusal reaches the calls it
        was for: they fall back to the controller path where that can carry them, or are
        reported refused (``path``), counted."""
        if err_type == ofp.OFPET_METER_MOD_FAILED:  # the modify-then-add at connect: one of
            self.counters["meter_mods_refused"] += 1  # the two is refused by design
            return []
        self.counters["openflow_errors"] += 1
        near = [(call, self.paths.path(call)) for call in self.paths.calls_near(xid)]
        msgs = self.paths.refused_xid(xid)
        if msgs is None:
            self.log.warning("OpenFlow error type %d code %d for xid %#x (not a flow "
                             "of a call)", err_type, code, xid)
            return []
        self.counters["gre_flows_refused"] += 1
        self.log.warning("the switch refused a GRE flow (xid %#x, error type %d code "
                         "%d): its calls fall back to the controller path or are refused",
                         xid, err_type, code)
        for call, before in near:
            if self.paths.path(call) != before and call.state != CallState.CLOSED:
                self._log_call("path", self.state.conns[call.conn], call, f"from={before}")
        return msgs

    # --- packet-in -----------------------------------------------------------------------

    def packet_in(self, in_port: int, data: bytes, cookie: int) -> list[Any]:
        return self.fence.sequence(self._packet_in(in_port, data, cookie))

    def _packet_in(self, in_port: int, data: bytes, cookie: int) -> list[Any]:
        """A packet the pipeline sent to the controller."""
        self.counters["packet_in"] += 1
        if not self.metered:
            kind = _rate_class(cookie)
            if kind is not None:
                bucket = self._buckets.get((kind, in_port if kind in pipeline.PER_PORT
                                            else None))
                if bucket is not None and not bucket.take(self.clock()):
                    return self._drop(f"rate_limited_{kind}", "port %d", in_port)
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

    def _conn_error(self, conn: Conn, name: str) -> None:
        conn.count_error(name)  # in its session row, and summed over the gateway
        self.counters[CONNECTION_ERROR_PREFIX + name] += 1

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
        if from_inside != (ip.src in self.inside_network):  # spoofed: the wrong side's
            return self._drop("spoofed_source", "%s on %s port %d", ip.src,
                              "inside" if from_inside else "outside", in_port)
        if from_inside or self.config.outside_next_hop is None:
            msgs.extend(self.neighbours.learn(ip.src, eth.src, in_port))
        key = (ip.src, tcp.src_port, ip.dst, tcp.dst_port)
        idx = self.state.idx
        conn = (idx.by_inside if from_inside else idx.by_outside).get(key)
        if conn is None:
            opening = tcp.has(TCP_SYN) and not tcp.flags & (TCP_ACK | TCP_RST) \
                and tcp.dst_port == pptp.PPTP_PORT
            if opening and from_inside:
                if ip.dst in self.inside_network or ip.dst in self.public_addresses:
                    # No hairpin NAT: not ours to carry (nor to the gateway's own addresses)
                    return msgs + self._drop("tcp_hairpin", "%s -> %s", ip.src,
                                             ip.dst)
                admitted, admit_msgs = self._admit(ip.src, now)
                msgs.extend(admit_msgs)
                if not admitted:
                    return msgs
                opened = self._open_outbound(eth, ip, tcp, now)
            elif opening and ip.dst in self.forwards:
                admitted, admit_msgs = self._admit(ip.src, now)
                msgs.extend(admit_msgs)
                if not admitted:
                    return msgs
                opened = self._open_inbound(ip, tcp, now)
            else:
                return msgs + self._drop("tcp_no_session", "%s:%d -> %s:%d", ip.src,
                                         tcp.src_port, ip.dst, tcp.dst_port)
            if not isinstance(opened, Conn):  # refused: what to send instead
                return msgs + opened
            conn = opened
        if ip.ttl <= 1:
            return msgs + self._drop("ttl_expired", "from %s", ip.src)
        conn.last_seen = now
        from_client = from_inside != conn.inbound  # the PNS's side of the connection
        if tcp.has(TCP_SYN):
            self._start_stream(conn, tcp, from_client)
            if not from_client and conn.id in self.state.idx.unanswered:
                self.state.answered(conn)  # its segments get flows (a budget) of their own
                msgs.extend(pipeline.tracked_flows(conn, self.mac, self.metered))
        rewritten = self._rewrite(conn, tcp, from_client)
        if rewritten is None:  # the connection could not be picked up again
            return msgs + self._reset(conn, ip, tcp, from_inside, now)
        segments, events = rewritten
        segments = self._shifted(conn, segments, from_client)
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
            msgs.extend(self.fence.after_flows(conn.id, flow_msgs, hold, out))
        msgs.extend(self._tcp_close(conn, tcp))
        return msgs

    def _ip_tcp(self, ip: Ipv4, tcp: Tcp, src: tuple[IPv4Address, int] | None = None,
                dst: tuple[IPv4Address, int] | None = None) -> bytes:
        """``ip`` carrying ``tcp``, with one end translated and the TTL decremented."""
        src_ip, src_port = src or (ip.src, tcp.src_port)
        dst_ip, dst_port = dst or (ip.dst, tcp.dst_port)
        segment = tcp._replace(src_port=src_port, dst_port=dst_port)
        return build_ipv4(ip._replace(src=src_ip, dst=dst_ip, ttl=ip.ttl - 1,
                                      payload=build_tcp(segment, src_ip, dst_ip)))

    def _start_stream(self, conn: Conn, tcp: Tcp, from_client: bool) -> None:
        """SYN or SYN-ACK: the direction's stream starts after it."""
        # The client's SYN is written with its new connection; the server's SYN-ACK with
        # the connection's being answered (``state.answered``).
        if from_client and conn.to_server is None:
            conn.to_server = (tcp.seq + 1) % SEQ_MOD
        elif not from_client and conn.to_client is None:
            conn.to_client = (tcp.seq + 1) % SEQ_MOD

    def barrier_reply(self, xid: int) -> list[Any]:
        """A barrier we sent was answered: release what waited for it."""
        return self.fence.barrier_reply(xid)

    def _admit(self, client: IPv4Address, now: float) -> tuple[bool, list[Any]]:
        """Whether a new control connection from ``client`` fits the caps, and what making
        room (or blocking the client) sends. At the overall cap the oldest connection its
        server has not answered makes room (as conntrack's early drop), never an answered
        one. A SYN that does not fit is dropped, counted; a host over its own cap has its
        SYNs dropped in the switch for a while (``_block``)."""
        state, limits = self.state, self.limits
        if self.store_down:  # it could not be written: it would not survive a failover
            self._drop("refused_store_unavailable", "SYN from %s: the state store cannot "
                       "write", client)
            return False, []
        if state.idx.client_conns.get(client, 0) >= limits.max_connections_per_host:
            self._drop("refused_per_host_cap", "SYN from %s: %d connections already", client,
                       limits.max_connections_per_host)
            return False, self._block(client, now)
        if len(state.conns) < limits.max_connections:
            return True, []
        oldest = next(iter(state.idx.unanswered.values()), None)
        if oldest is None:
            self._drop("refused_connection_cap", "SYN from %s: %d connections", client,
                       limits.max_connections)
            return False, []
        self.counters["unanswered_early_drops"] += 1
        self.log.debug("control connection %s dropped early for a new one", Described(oldest))
        return True, self._forget(oldest)

    def _block(self, host: IPv4Address, now: float) -> list[Any]:
        """Drop ``host``'s new connections in the switch for ``limits.block_seconds``: on
        one port (an uplink) its SYNs would otherwise use up every host's budget."""
        seconds = self.limits.block_seconds
        if not seconds or host in self.blocked:
            return []
        if len(self.blocked) >= self.limits.max_blocked_hosts:
            self.counters["blocked_hosts_full"] += 1
            return []
        self.blocked[host] = now + seconds
        self.counters["hosts_blocked"] += 1
        self.log.warning("%s keeps opening control connections past its cap of %d: its "
                         "new ones are dropped in the switch for %ds", host,
                         self.limits.max_connections_per_host, seconds)
        return [pipeline.block_flow(host, seconds)]

    def _open_outbound(self, eth: Ethernet, ip: Ipv4, tcp: Tcp,
                       now: float) -> Conn | list[Any]:
        public_ip = self.pool.choose_public(ip.src, ip.dst)
        public_port = self.pool.choose_port(public_ip, tcp.src_port, ip.dst, tcp.dst_port)
        if public_port is None:
            self.counters["public_ports_exhausted"] += 1
            self.log.warning("no free port on %s towards %s:%d: connection from %s refused",
                             public_ip, ip.dst, tcp.dst_port, ip.src)
            return self._refuse_syn(eth, ip, tcp, now)
        return self._register(Conn(
            self.state.new_id(), ip.src, tcp.src_port, ip.dst, tcp.dst_port, public_ip,
            public_port, created=now, last_seen=now))

    def _refuse_syn(self, eth: Ethernet, ip: Ipv4, tcp: Tcp, now: float) -> list[Any]:
        """RST, as the server would send it, to an inside client whose SYN cannot go on."""
        rst = Tcp(tcp.dst_port, tcp.src_port, 0, (tcp.seq + 1) % SEQ_MOD, TCP_RST | TCP_ACK,
                  b"")
        packet = build_ipv4(ip._replace(src=ip.dst, dst=ip.src, ttl=64,
                                        payload=build_tcp(rst, ip.dst, ip.src)))
        return self.neighbours.send_via(ip.src, INSIDE, self._sender(packet), now)

    def _open_inbound(self, ip: Ipv4, tcp: Tcp, now: float) -> Conn | list[Any]:
        return self._register(Conn(
            self.state.new_id(), ip.src, tcp.src_port, self.forwards[ip.dst], pptp.PPTP_PORT,
            ip.dst, pptp.PPTP_PORT, created=now, last_seen=now, inbound=True))

    def _register(self, conn: Conn) -> Conn | list[Any]:
        idx = self.state.idx
        if conn.inside_key in idx.by_inside or conn.outside_key in idx.by_outside:
            # An outbound and an inbound connection that would look alike: never both.
            return self._drop("connection_key_conflict", "%s", Described(conn))
        self.state.add_conn(conn)
        self.counters[f"control_connections_{conn.direction}"] += 1
        self.log.debug("control connection %s", Described(conn))
        return conn

    def _next_hop(self, destination: IPv4Address) -> IPv4Address:
        return self.config.outside_next_hop or destination

    def _sender(self, ip_packet: bytes) -> Callable[[Hop], list[Any]]:
        def send(hop: Hop) -> list[Any]:
            frame = build_ethernet(Ethernet(hop.mac, self.mac, ETH_TYPE_IPV4, ip_packet))
            return [ofmsg.packet_out(frame, [ofmsg.output(hop.port)])]
        return send

    def _stream(self, conn: Conn, tcp: Tcp, from_client: bool) -> StreamRewriter | None:
        """The direction's rewriter for this segment; None: forward it untouched (a
        restored stream still looking for the start of a message)."""
        stream = conn.to_server if from_client else conn.to_client
        decide = self._to_server_decider if from_client else self._to_client_decider
        if isinstance(stream, StreamRewriter):
            return stream
        if isinstance(stream, int):  # parked between messages: carry on from there
            return StreamRewriter(stream, decide, conn)
        assert isinstance(stream, StreamMark)
        ahead = (tcp.seq - stream.seq) % SEQ_MOD
        if ahead == 0 or ahead >= SEQ_MOD // 2:  # at the mark, or retransmitted: in step
            return StreamRewriter.resume(stream, decide, conn)
        # Bytes were forwarded past the mark before the restart: pick the stream up at
        # the next segment that starts a message.
        if _starts_message(tcp.payload):
            self.counters["streams_resynchronised"] += 1
            if self.last_restore is not None:
                self.last_restore["connections_resynchronised"] += 1
            self.log.info("%s: control stream resynchronised %d bytes on", describe(conn),
                          ahead)
            return StreamRewriter.resume(stream, decide, conn, seq=tcp.seq)
        self.counters["resync_segments_skipped"] += 1
        return None

    def _rewrite(self, conn: Conn, tcp: Tcp,
                 from_client: bool) -> tuple[list[Tcp], list[Event]] | None:
        """The segments to forward for ``tcp`` (call IDs translated), and call events.
        None: a restored stream that cannot be followed."""
        stored = conn.to_server if from_client else conn.to_client
        if not tcp.payload or stored is None:
            return [tcp], []
        stream = self._stream(conn, tcp, from_client)
        if stream is None:
            misses = self._resync_misses.get((conn.id, from_client), 0) + 1
            if misses >= RESYNC_SEGMENTS:
                return None
            self._resync_misses[(conn.id, from_client)] = misses
            return [tcp], []
        if self._resync_misses:
            self._resync_misses.pop((conn.id, from_client), None)
        try:
            result = stream.segment(tcp.seq, tcp.payload)
        except ReassemblyOverflow as overflow:  # its own name: mypyc types one name once
            self._conn_error(conn, "reassembly_overflow")
            self.log.warning("%s: %s", describe(conn), overflow)
            return [], []
        parked = stream.parked()
        kept: Any = stream if parked is None else parked
        if from_client:
            conn.to_server = kept
        else:
            conn.to_client = kept
        if result.error is not None:
            self._conn_error(conn, "stream_desync")
            self.log.warning("%s: control stream lost sync (%s); NAT goes on, calls "
                             "on it are no longer tracked", describe(conn), result.error)
        segments = [tcp if emit.complete and emit.seq == tcp.seq and emit.payload == tcp.payload
                    else tcp._replace(seq=emit.seq, payload=emit.payload, flags=tcp.flags
                                      if emit.complete else tcp.flags & ~(TCP_FIN | TCP_PSH))
                    for emit in result.emits]
        events: list[Event] = []
        if not result.messages:
            return segments, events
        # The stream's position is written with the connection's next change (a restored
        # stream that lags resynchronises on a message start), but call-ID patches that
        # retransmissions need are written at once.
        if isinstance(kept, StreamRewriter) and kept.has_patches():
            self.state.touch(rec.CONN, conn.id)
        tracker = Tracker(self.state, self.clock(), self.limits, self.counters, self.log)
        for message in result.messages:
            try:
                msg = pptp.parse(message.data)
            except PptpError as err:
                self._conn_error(conn, "bad_message")
                self.log.warning("%s: bad control message: %s", describe(conn), err)
                continue
            self.counters["control_messages"] += 1
            handle = tracker.client_message if from_client else tracker.server_message
            events.extend(handle(conn, msg))
        return segments, events

    def _reset(self, conn: Conn, ip: Ipv4, tcp: Tcp, from_inside: bool,
               now: float) -> list[Any]:
        """Close a connection that cannot be recovered: RST to both ends, its calls and
        flows gone, counted."""
        self.counters["connections_unrecoverable"] += 1
        if self.last_restore is not None:
            self.last_restore["connections_closed"] += 1
        self.log.warning("%s: control stream cannot be picked up again: reset",
                         describe(conn))
        from_client = from_inside != conn.inbound
        rst = tcp._replace(flags=TCP_RST | TCP_ACK, payload=b"", options=b"")
        back = rst._replace(seq=tcp.ack, ack=(tcp.seq + len(tcp.payload)) % SEQ_MOD)
        msgs = [*self._to_end(conn, from_client, self._shifted(conn, [rst], from_client)[0],
                              now),
                *self._to_end(conn, not from_client, back, now)]
        msgs.extend(self._apply(conn, Tracker(self.state, now).connection_closed(
            conn, CloseReason.RESET))[0])
        msgs.extend(self._forget(conn))
        return msgs

    def _to_end(self, conn: Conn, to_server: bool, segment: Tcp, now: float) -> list[Any]:
        """A segment of ours to one end of ``conn``, as from the other end (its ports are
        set here): resets, and messages the gateway puts into the stream."""
        if to_server == conn.inbound:  # to the inside end
            (src, sport), (dst, dport) = conn.outside, conn.inside
            hop, side = dst, INSIDE
        else:
            (src, sport), (dst, dport) = (conn.public_ip, conn.public_port), conn.outside
            hop, side = self._next_hop(dst), OUTSIDE
        tcp = build_tcp(segment._replace(src_port=sport, dst_port=dport), src, dst)
        return self.neighbours.send_via(hop, side,
                                        self._sender(build_ipv4(Ipv4(src, dst, IP_PROTO_TCP,
                                                                     tcp))), now)

    def _shifted(self, conn: Conn, segments: list[Tcp], from_client: bool) -> list[Tcp]:
        """Segments as their receiver counts, where the gateway injected bytes into the
        stream (``seqshift``): the sender's seq moved on, the acknowledgement of the
        other direction moved back (its SACK blocks blanked)."""
        own = conn.to_server_shift if from_client else conn.to_client_shift
        other = conn.to_client_shift if from_client else conn.to_server_shift
        if own is None and other is None:
            return segments
        out: list[Tcp] = []
        for segment in segments:
            if other is not None and segment.flags & TCP_ACK:
                ack, settled = seqshift.ack_back(other, segment.ack)
                if settled is not other:  # injected bytes acknowledged: no more resends
                    other = settled
                    if from_client:
                        conn.to_client_shift = settled
                    else:
                        conn.to_server_shift = settled
                    self.state.touch_lazy(rec.CONN, conn.id)
                segment = segment._replace(ack=ack,
                                           options=seqshift.blank_sack(segment.options))
            pieces = seqshift.split(own, segment.seq, len(segment.payload))
            if len(pieces) == 1:
                out.append(segment._replace(seq=pieces[0][2]))
                continue
            for at, length, seq in pieces:  # a retransmission across an injection point
                last = at + length == len(segment.payload)
                out.append(segment._replace(
                    seq=seq, payload=segment.payload[at:at + length],
                    flags=segment.flags if last else segment.flags & ~(TCP_FIN | TCP_PSH)))
        return out

    def _tcp_close(self, conn: Conn, tcp: Tcp) -> list[Any]:
        if not tcp.flags & (TCP_FIN | TCP_RST):
            return []
        if conn.state == ConnState.CLOSING:
            return []
        conn.state = ConnState.CLOSING
        conn.closed_at = self.clock()
        self.state.touch(rec.CONN, conn.id)
        self.log.debug("control connection %s closing (%s)", Described(conn),
                       "RST" if tcp.has(TCP_RST) else "FIN")
        msgs, _ = self._apply(conn, Tracker(self.state, conn.closed_at).connection_closed(conn))
        return msgs

    # --- calls and their GRE pairs -------------------------------------------------------

    def _apply(self, conn: Conn, events: list[Event]) -> tuple[list[Any], bool]:
        """Flow messages for call events; True when a new pair awaits confirmation."""
        msgs: list[Any] = []
        hold = False
        for event in events:
            call = event.call
            if event.kind == EventKind.CALL_REQUESTED:
                msgs.extend(self._call_requested(conn, call))
                self._log_call("requested", conn, call)
            elif event.kind == EventKind.CALL_ESTABLISHED and (refusal := self._refusal(call)):
                # Its reply reached the client as a failure (callids): it ends here too.
                if refusal == NO_PATH:
                    self.counters["calls_refused_no_path"] += 1
                else:
                    self.counters["calls_refused_store_unavailable"] += 1
                call.state = CallState.CLOSED
                self.counters["calls_closed"] += 1
                self._log_call("closed", conn, call, f"reason={CloseReason.REFUSED}")
                msgs.extend(self.paths.call_closed(conn, call))
            elif event.kind == EventKind.CALL_ESTABLISHED:
                self.counters["calls_established"] += 1
                if self.on_call_setup is not None:  # metrics: request to reply
                    self.on_call_setup(self.clock() - call.created)
                pair_msgs = self.paths.call_established(call)
                hold = hold or bool(pair_msgs)
                msgs.extend(pair_msgs)
                self._log_call("established", conn, call)
            elif event.kind == EventKind.CALL_CLOSED:
                self.counters["calls_closed"] += 1
                self._log_call("closed", conn, call, f"reason={event.reason}")
                msgs.extend(self.paths.call_closed(conn, call))
        return msgs, hold

    def _log_call(self, event: str, conn: Conn, call: rec.Call, detail: str = "") -> None:
        if self.log.isEnabledFor(logging.INFO):  # (the path costs a few look-ups)
            path = "-" if call.state == CallState.CLOSED else self.paths.path(call)
            log_call(self.log, self.dpid, event, conn, call, path, detail)

    def _refusal(self, call: rec.Call) -> str:
        """Why a call its server has just connected is refused, "" if it is not."""
        if self.paths.path(call) == Path.REFUSED:
            return NO_PATH
        return STORE_UNAVAILABLE if self.store_down else ""

    def _call_requested(self, conn: Conn, call: rec.Call) -> list[Any]:
        self.counters["calls_requested"] += 1
        conflict = self.paths.outward_conflict(conn)
        if conflict is not None:
            self.counters["gre_pair_conflict"] += 1
            self.log.warning("%s: call %d: %s already talks GRE to %s through %s: the switch "
                             "cannot tell the two apart, no GRE flows", describe(conn),
                             call.client_call_id, conn.inside[0], conn.outside[0],
                             conflict.public_ip)
            return []
        to_inside = self.neighbours.lookup(conn.inside[0])
        to_outside = self.neighbours.lookup(self._next_hop(conn.outside[0]))
        msgs = self.paths.call_requested(conn, call, to_inside, to_outside)
        if msgs is None:
            self.counters["call_without_next_hop"] += 1
            self.log.warning("%s: call %d: a next hop is unknown, no GRE flows",
                             describe(conn), call.client_call_id)
            return []
        self.log.debug("%s: call %d requested as %d (pair %s)", Described(conn),
                       call.client_call_id, call.public_call_id, call.pair)
        # Early inward GRE reaches the controller, never the drop flow; the barrier keeps
        # the request behind the flow changes on any switch.
        return self.fence.order(msgs)

    # --- GRE through the controller ------------------------------------------------------

    def _gre(self, in_port: int, ip: Ipv4, frame_len: int) -> list[Any]:
        """GRE the switch could not place: inward GRE of a key on the controller path (the
        key's call ID picks the call), or an inside host's GRE no pair's flow took."""
        outward = in_port in self.inside_ports
        if not outward and (in_port not in self.outside_ports
                            or ip.dst not in self.public_addresses):
            return self._drop("gre_unexpected", "%s -> %s on port %d", ip.src, ip.dst, in_port)
        try:
            call_id = peek_call_id(ip.payload)
        except GreError as err:
            return self._drop("bad_gre", "%s -> %s: %s", ip.src, ip.dst, err)
        if ip.ttl <= 1:
            return self._drop("ttl_expired", "GRE from %s", ip.src)
        if outward:
            return self._gre_outward(ip, call_id, frame_len)
        call = self.state.key_call((ip.src, ip.dst), call_id)
        pair = None if call is None else self.state.pair_of(call)
        if call is None or pair is None:
            return self._drop("gre_no_call", "%s -> %s call ID %d", ip.src, ip.dst, call_id)
        call.slow_packets += 1
        call.slow_bytes += frame_len
        self.counters["gre_via_controller"] += 1
        self.counters["gre_via_controller_bytes"] += frame_len
        inside_id = call.inside_id
        payload = ip.payload if inside_id is None or inside_id == call_id \
            else with_call_id(ip.payload, inside_id)
        rewritten = ip._replace(dst=pair.inside_ip, ttl=ip.ttl - 1, payload=payload)
        return self._sender(build_ipv4(rewritten))(pair.to_inside)

    def _gre_outward(self, ip: Ipv4, call_id: int, frame_len: int) -> list[Any]:
        """An inside host's GRE to its peer: its pair's outward rewrite, done here (the
        switch refused the flow, or has not got it yet). Its key, the peer's call ID, is
        never translated."""
        pairs = self.state.idx.host_pairs.get((ip.src, ip.dst))
        if not pairs:
            return self._drop("gre_no_call", "%s -> %s call ID %d (outward)", ip.src, ip.dst,
                              call_id)
        pair = pairs[0]  # one: a second public address's pair is refused (outward_conflict)
        for call in self.state.idx.pair_calls.get(pair.id, ()):
            if call.outward_id == call_id:
                call.slow_packets += 1
                call.slow_bytes += frame_len
                break
        self.counters["gre_outward_via_controller"] += 1
        self.counters["gre_outward_via_controller_bytes"] += frame_len
        rewritten = ip._replace(src=pair.public_ip, ttl=ip.ttl - 1)
        return self._sender(build_ipv4(rewritten))(pair.to_outside)

    # --- switch feedback and time --------------------------------------------------------

    def flow_removed(self, cookie: int, reason: int, packets: int, octets: int) -> list[Any]:
        return self.fence.sequence(self._flow_removed(cookie, reason, packets, octets))

    def _flow_removed(self, cookie: int, reason: int, packets: int, octets: int) -> list[Any]:
        pair = self.paths.pair_by_cookie(cookie)
        if pair is None:
            return []
        pair.removed_packets += packets
        pair.removed_bytes += octets
        if reason not in (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_HARD_TIMEOUT):
            return []
        self.log.info("GRE pair %d (%s - %s via %s) idle: its calls end", pair.id,
                      pair.inside_ip, pair.outside_ip, pair.public_ip)
        self.counters["gre_idle_timeouts"] += 1
        msgs: list[Any] = []
        for call in list(self.state.idx.pair_calls.get(pair.id, ())):
            call.state = CallState.CLOSED
            self.counters["calls_closed"] += 1
            conn = self.state.conns[call.conn]
            self._log_call("closed", conn, call, f"reason={CloseReason.IDLE}")
            msgs.extend(self.paths.call_closed(conn, call))
        return msgs

    def flow_stats(self, entries: list[FlowEntry], xid: int | None = None,
                   more: bool = False) -> list[Any]:
        """Flow statistics: the answer a reconnect waits for (its flows are then made
        what the records want), or counters for the session table."""
        if xid is not None and xid == self._sync_xid:
            self._sync_entries.extend(entries)
            if more:
                return []
            self._sync_xid = None
            present, self._sync_entries = self._sync_entries, []
            self._count(present)
            return self._sync_flows(present)
        self._count(entries)
        return []

    def _count(self, entries: list[FlowEntry]) -> None:
        for entry in entries:
            if entry.cookie == GRE_UNMATCHED_COOKIE:
                self.switch_counters["gre_unmatched_dropped"] = entry.packets
                continue
            if entry.table_id != pipeline.TABLE_GRE:
                continue
            pair = self.paths.pair_by_cookie(entry.cookie)
            if pair is None:
                continue
            if ("ipv4_src", str(pair.inside_ip)) in entry.match:
                pair.outward_packets, pair.outward_bytes = entry.packets, entry.bytes
            else:
                pair.inward_packets, pair.inward_bytes = entry.packets, entry.bytes

    def tick(self) -> list[Any]:
        return self.fence.sequence(self._tick())

    def _tick(self) -> list[Any]:
        """Timeouts, ARP retries and statistics requests; call about once a second."""
        now = self.clock()
        msgs = self.neighbours.tick(now)
        for host, until in list(self.blocked.items()):
            if now >= until:
                del self.blocked[host]
                msgs.append(pipeline.delete_block_flow(host))
        for conn in list(self.state.idx.unanswered.values()):  # oldest first
            if now - conn.created < self.timeouts.unanswered:
                break
            self.counters["unanswered_timeouts"] += 1
            msgs.extend(self._forget(conn))
        for conn in list(self.state.conns.values()):
            if conn.state == ConnState.CLOSING:
                if now - (conn.closed_at or now) >= self.timeouts.closing_linger:
                    msgs.extend(self._forget(conn))
            elif now - conn.last_seen >= self.timeouts.control_idle:
                self.log.info("control connection %s idle for %ds: torn down", describe(conn),
                              self.timeouts.control_idle)
                self.counters["control_idle_timeouts"] += 1
                events = Tracker(self.state, now).connection_closed(conn, CloseReason.IDLE)
                msgs.extend(self._apply(conn, events)[0])
                msgs.extend(self._forget(conn))
            elif conn.to_server_shift is not None or conn.to_client_shift is not None:
                msgs.extend(self._resend_injections(conn, now))
        if self.connected and now - self._last_stats >= self.timeouts.stats_interval:
            self._last_stats = now
            msgs.append(parser.OFPFlowStatsRequest(
                None, table_id=pipeline.TABLE_GRE, out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY, cookie=pipeline.COOKIE_TAG,
                cookie_mask=pipeline.COOKIE_TAG_MASK))
        return msgs

    def _forget(self, conn: Conn) -> list[Any]:
        msgs = []
        for call in list(self.state.calls_of(conn)):  # calls end before their connection
            msgs.extend(self.paths.call_closed(conn, call))
        if _answered(conn):
            msgs.append(pipeline.delete_tracked_flows(conn.id))
        self.state.remove_conn(conn)
        self._resync_misses.pop((conn.id, True), None)
        self._resync_misses.pop((conn.id, False), None)
        return msgs

    # --- port forwards -------------------------------------------------------------------

    def _apply_forwards(self) -> None:
        """The configured forwards, changed by those added and removed at run time."""
        forwards = {f.public: f.inside for f in self.config.port_forwards}
        for public, inside in self.state.forwards.items():
            if inside is None:
                forwards.pop(public, None)
            else:
                forwards[public] = inside
        self.forwards = forwards
        self.pool.set_forwarded(frozenset(forwards))

    def _set_forward(self, public: IPv4Address, inside: IPv4Address | None) -> None:
        configured = {f.public: f.inside for f in self.config.port_forwards}
        if configured.get(public) == inside:
            self.state.forwards.pop(public, None)  # as configured: nothing to keep
        else:
            self.state.forwards[public] = inside
        self.state.touch(rec.FORWARD, str(public))
        self._apply_forwards()

    def forward_rows(self) -> list[dict[str, Any]]:
        return [{"dpid": self.dpid, "public": str(public), "inside": str(inside),
                 "sessions": sum(c.inbound and c.public_ip == public
                                 for c in self.state.conns.values())}
                for public, inside in sorted(self.forwards.items())]

    def add_forward(self, forward: PortForward) -> None:
        """Forward inbound PPTP to ``forward.public`` to ``forward.inside`` (validated)."""
        if forward.public in self.forwards:
            raise ValueError(f"{forward.public} is already forwarded to "
                             f"{self.forwards[forward.public]}")
        self._set_forward(forward.public, forward.inside)
        self.log.info("port forward %s -> %s added", forward.public, forward.inside)

    def remove_forward(self, public: IPv4Address) -> list[Any]:
        return self.fence.sequence(self._remove_forward(public))

    def _remove_forward(self, public: IPv4Address) -> list[Any]:
        """Stop forwarding ``public``; its control connections and calls are torn down."""
        if public not in self.forwards:
            raise KeyError(public)
        inside = self.forwards[public]
        self._set_forward(public, None)
        msgs: list[Any] = []
        for conn in list(self.state.conns.values()):
            if conn.inbound and conn.public_ip == public:
                # its peers are told, as on request
                msgs.extend(self._end_conn(conn, CloseReason.FORWARD_REMOVED)[0])
                self.counters["forward_sessions_torn_down"] += 1
        self.log.info("port forward %s -> %s removed", public, inside)
        return msgs

    # --- teardown on request (REST) ------------------------------------------------------

    def teardown(self, conn_id: int) -> tuple[list[Any], dict[str, Any]]:
        """End control connection ``conn_id`` and all its calls (KeyError: no such
        connection): the OpenFlow messages to send, and what was torn down
        ({"calls": [client call IDs], "flows_deleted": n, "peers_told": bool})."""
        msgs, summary = self._teardown(conn_id)
        return self.fence.sequence(msgs), summary

    def _teardown(self, conn_id: int) -> tuple[list[Any], dict[str, Any]]:
        conn = self.state.conns[conn_id]
        msgs, summary = self._end_conn(conn)
        self.counters["sessions_torn_down"] += 1
        self.log.info("%s: torn down on request (%d calls, %s)", describe(conn),
                      len(summary["calls"]), "peers told" if summary["peers_told"]
                      else "reset only")
        return msgs, summary

    def _end_conn(self, conn: Conn,
                  reason: str = CloseReason.TEARDOWN) -> tuple[list[Any], dict[str, Any]]:
        """End ``conn`` the PPTP way where its streams' positions are known: each end is
        told its calls are over and the control connection stopped (a Call-Clear-Request
        per call and a Stop-Control-Connection-Request to the server as from the client;
        a Call-Disconnect-Notify per call and the same Stop to the client as from the
        server), then both ends get a RST behind those bytes. Elsewhere a RST only. Its
        calls and flows go."""
        now = self.clock()
        before = self._flow_ids(conn)
        calls = list(self.state.calls_of(conn))
        at_server, at_client = _boundary(conn.to_server), _boundary(conn.to_client)
        told = conn.state not in (ConnState.CONNECTING, ConnState.CLOSING) \
            and at_server is not None and at_client is not None
        stop = pptp.build(pptp.StopControlConnectionRequest(
            reason=pptp.StopControlConnectionReason.STOP_LOCAL_SHUTDOWN))
        msgs = []
        for to_server, at, ack in ((True, at_server, at_client), (False, at_client, at_server)):
            if at is None:  # no known position: a RST at the nearest one, or none at all
                at, ack = _nearest(conn.to_server if to_server else conn.to_client), None
                if at is None:
                    continue
            data = b"".join(_call_ended(call, to_server) for call in calls) + stop if told \
                else b""
            shift = conn.to_server_shift if to_server else conn.to_client_shift
            seq = seqshift.out_seq(shift, at)
            msgs.extend(self._inject(conn, to_server, seq, ack, data, now))
            rst = Tcp(0, 0, (seq + len(data)) % SEQ_MOD, ack or 0,
                      TCP_RST if ack is None else TCP_RST | TCP_ACK)
            msgs.extend(self._to_end(conn, to_server, rst, now))
        msgs.extend(self._apply(conn, Tracker(self.state, now).connection_closed(
            conn, reason))[0])
        msgs.extend(self._forget(conn))
        return msgs, {"calls": [call.client_call_id for call in calls],
                      "flows_deleted": len(before - self._flow_ids(None)),
                      "peers_told": told}

    def _inject(self, conn: Conn, to_server: bool, seq: int, ack: int | None, data: bytes,
                now: float) -> list[Any]:
        """``data`` into one direction of the stream at the receiver's ``seq``."""
        msgs: list[Any] = []
        for at in range(0, len(data), MAX_EMIT):
            chunk = data[at:at + MAX_EMIT]
            last = at + len(chunk) == len(data)
            segment = Tcp(0, 0, (seq + at) % SEQ_MOD, ack or 0,
                          TCP_ACK | TCP_PSH if last else TCP_ACK, chunk)
            msgs.extend(self._to_end(conn, to_server, segment, now))
        return msgs

    def _flow_ids(self, conn: Conn | None) -> set[tuple[int, int, Any]]:
        """The flows the records want for GRE, and for ``conn``'s segments: what a
        teardown deleted is what it no longer wants."""
        tracked = [] if conn is None or not _answered(conn) \
            else pipeline.tracked_flows(conn, self.mac, self.metered)
        return {entry_of(msg).identity for msg in (*self.paths.flows(), *tracked)}

    def end_call(self, conn_id: int, client_call_id: int) -> tuple[list[Any], dict[str, Any]]:
        """End one call of connection ``conn_id``, the connection going on (KeyError: no
        such connection or call); the same answer as ``teardown``."""
        msgs, summary = self._end_call(conn_id, client_call_id)
        return self.fence.sequence(msgs), summary

    def _end_call(self, conn_id: int, client_call_id: int) -> tuple[list[Any], dict[str, Any]]:
        """The server is sent a Call-Clear-Request (the call's public ID) as from the
        client, the client a Call-Disconnect-Notify (the server's call ID) as from the
        server, each at the end of what its stream has been sent. The connection goes on
        with those bytes counted in its sequence numbers (``Conn.*_shift``); they are sent
        again until acknowledged. Where a stream's position is not known, the call ends
        here only (``peers_told`` false)."""
        conn = self.state.conns[conn_id]
        call = self.state.call_by(conn, "client_call_id", client_call_id)
        if call is None:
            raise KeyError(client_call_id)
        now = self.clock()
        before = self._flow_ids(None)
        at_server, at_client = _boundary(conn.to_server), _boundary(conn.to_client)
        told = conn.state == ConnState.ESTABLISHED and at_server is not None \
            and at_client is not None
        msgs: list[Any] = []
        if told:
            assert at_server is not None and at_client is not None
            msgs.extend(self._inject_kept(conn, True, at_server, at_client,
                                          _call_ended(call, True), now))
            notify = _call_ended(call, False)
            if notify:  # else the client hears the server's answer
                msgs.extend(self._inject_kept(conn, False, at_client, at_server, notify, now))
        call.state = CallState.CLOSED
        self.counters["calls_closed"] += 1
        self.counters["calls_torn_down"] += 1
        self._log_call("closed", conn, call, f"reason={CloseReason.TEARDOWN}")
        msgs.extend(self.paths.call_closed(conn, call))
        self.log.info("%s: call %d ended on request (%s)", describe(conn), client_call_id,
                      "peers told" if told else "not told: stream position unknown")
        return msgs, {"calls": [client_call_id],
                      "flows_deleted": len(before - self._flow_ids(None)),
                      "peers_told": told}

    def _inject_kept(self, conn: Conn, to_server: bool, at: int, ack: int, data: bytes,
                     now: float) -> list[Any]:
        """``data`` into a stream that goes on: before the sender's byte ``at``, kept in
        the connection's shift until acknowledged."""
        shift = seqshift.inject(conn.to_server_shift if to_server else conn.to_client_shift,
                                at, data, ack)
        if to_server:
            conn.to_server_shift = shift
        else:
            conn.to_client_shift = shift
        self.state.touch(rec.CONN, conn.id)  # written before the bytes leave
        seq = seqshift.injected_at(shift, len(shift.pending) - 1)
        return self._inject(conn, to_server, seq, ack, data, now)

    def _resend_injections(self, conn: Conn, now: float) -> list[Any]:
        """Injected bytes not yet acknowledged, sent again (``INJECTION_TRIES`` in all)."""
        msgs: list[Any] = []
        for to_server in (True, False):
            shift = conn.to_server_shift if to_server else conn.to_client_shift
            if shift is None or not any(i.tries < INJECTION_TRIES for i in shift.pending):
                continue
            pending = []
            for index, injection in enumerate(shift.pending):
                if injection.tries < INJECTION_TRIES:
                    msgs.extend(self._inject(conn, to_server, seqshift.injected_at(shift, index),
                                             injection.ack, injection.data, now))
                    injection = dataclasses.replace(injection, tries=injection.tries + 1)
                    self.counters["injections_resent"] += 1
                pending.append(injection)
            shift = rec.SeqShift(shift.total, tuple(pending))
            if to_server:
                conn.to_server_shift = shift
            else:
                conn.to_client_shift = shift
            self.state.touch_lazy(rec.CONN, conn.id)
        return msgs

    # --- reporting -----------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        """Rows of the REST session table, one per control connection."""
        return [self.session_row(conn) for conn in self.state.conns.values()]

    def session_row(self, conn: Conn) -> dict[str, Any]:
        calls = []
        for call in self.state.calls_of(conn):
            pair = self.state.pair_of(call)
            traffic = (0, 0) if pair is None else pair.traffic()
            calls.append(call_row(call, self.paths.path(call), traffic))
        return conn_row(conn, self.dpid, calls)

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
            "control_connections": len(self.state.conns),
            "gre_pairs": len(self.state.pairs),
            "counters": dict(sorted((self.counters + self.neighbours.counters).items())),
            "switch_counters": dict(sorted(self.switch_counters.items())),
            "limits": dataclasses.asdict(self.limits),
            # Hosts whose new connections the switch drops, and seconds left (the first 100).
            "blocked_hosts": {str(host): max(0, round(until - self.clock()))
                              for host, until in itertools.islice(self.blocked.items(), 100)},
            "rates": dataclasses.asdict(self.rates),
            "meters": self.metered,
            "last_restore": self.last_restore,
            "last_flow_sync": self.last_sync,
        }


def _starts_message(payload: bytes) -> bool:
    """Whether a segment begins with a PPTP control message header (length, magic)."""
    if len(payload) < 8 or payload[4:8] != COOKIE:
        return False
    return pptp.MIN_MESSAGE_LEN <= int.from_bytes(payload[:2], "big") <= pptp.MAX_MESSAGE_LEN


def _call_ended(call: rec.Call, to_server: bool) -> bytes:
    """What tells one end that ``call`` is over, as its peer would: the server a
    Call-Clear-Request (the ID it knows the call by), the client a Call-Disconnect-Notify
    (the server's call ID; none before the server named one)."""
    if to_server:
        return pptp.build(pptp.CallClearRequest(call_id=call.public_call_id))
    if call.server_call_id is None:
        return b""
    return pptp.build(pptp.CallDisconnectNotify(
        call_id=call.server_call_id, result_code=pptp.CallDisconnectResult.ADMIN_SHUTDOWN))


def _boundary(stream: Any) -> int | None:
    """Where a message can go into one direction of a stream: the end of what was sent on,
    if that is between messages; None where that is not known."""
    if isinstance(stream, int):
        return stream
    if isinstance(stream, StreamRewriter):
        return stream.boundary()
    return None


def _nearest(stream: Any) -> int | None:
    """The best guess at where a stream stands, for a RST: None before its SYN."""
    if isinstance(stream, int):
        return stream
    if isinstance(stream, StreamRewriter):
        return stream.forwarded
    if isinstance(stream, StreamMark):
        return stream.seq
    return None


def _answered(conn: Conn) -> bool:
    """The server answered the connection's SYN (what ``state.answered`` records)."""
    return conn.to_client is not None


_RATE_CLASSES: dict[int, str] = {
    pipeline.PipelineFlow.ARP_INSIDE: "arp", pipeline.PipelineFlow.ARP_PUBLIC: "arp",
    pipeline.PipelineFlow.PPTP_TO_SERVER: "new_connections",
    pipeline.PipelineFlow.PPTP_FROM_SERVER: "new_connections",
    pipeline.PipelineFlow.GRE_OUTWARD_UNMATCHED: "unmatched_gre"}


def _rate_class(cookie: int) -> str | None:
    """The budget a packet-in is charged to, by the flow that sent it."""
    decoded = pipeline.decode_cookie(cookie)
    if decoded is None:
        return None
    if decoded.kind == pipeline.CookieKind.PIPELINE:
        return _RATE_CLASSES.get(decoded.ident)
    if decoded.kind == pipeline.CookieKind.CONNECTION:
        return "control"
    if decoded.kind == pipeline.CookieKind.GRE_KEY:
        return "gre"
    return None


class TokenBucket:
    """``rate`` tokens a second, as many held at most."""

    __slots__ = ("at", "rate", "tokens")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.at: float | None = None

    def take(self, now: float) -> bool:
        if self.at is not None:
            self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
