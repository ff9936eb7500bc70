"""Fuzz target ``gateway``: one gateway on the fake switch, driven by a script of operations
decoded from the fuzzer's bytes.

The first two bytes pick a configuration (``openflow``, ``ovs``, or an outside next hop)
and a preset that drives the gateway deep into its state machine first (neighbours
learnt; an outbound call; an inbound call through the port forward; two clients sharing
a key on the slow path with translated call IDs). Then operations until the bytes run
out: PPTP messages from either end of any control connection, well-formed or mangled,
whole or split, reordered, duplicated, held back or retransmitted; FIN/RST and data
after them; new connections either way; GRE, ARP and junk from any port; clock ticks;
flow-removed for any cookie; switch disconnects (with or without losing its flows) and
reconnects; controller restarts; held and released barriers; reordering switches; port
forwards added and removed; flow statistics.

Checked: no exception escapes; the indexes equal their rebuilt form after every step
(the fake switch does that); nothing leaves by a port on neither side, no public source
into the LAN, no LAN destination out of the WAN; neighbours are learnt only on the side
their address belongs to and never from an ARP that is neither request nor reply; every
GRE flow in the switch is owned by a live pair or key and every flow they want is there;
our flows in the other tables are what the records want; the state store holds exactly
the live records. Then every timer runs out: no connection,
call, pair, GRE flow, queued packet or held packet may be left, and the neighbour table
(a cache that outlives the timers) must stay within its bound.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.gre import EnhancedGre, build_gre
from ryu_pptp_alg.config import GatewayConfig, PortForward, Timeouts, config_from_dict
from ryu_pptp_alg.gateway import Gateway
from ryu_pptp_alg.pairs import pair_cookie
from ryu_pptp_alg.records import Conn
from ryu_pptp_alg.state import VIA_CONTROLLER, Indexes
from tests.fakeoftable import FakeOFTable, _display_match, _normalise_match
from tests.fuzz import known
from tests.fuzz.engine import Finding, Reader, normalise
from tests.unit.fakeswitch import FakeClock, FakeSwitch, Host, Sent, TcpEnd, frame_fields

GW_MAC = "0e:00:00:00:00:01"
LAN = IPv4Network("10.0.0.0/24")
GW_IP = IPv4Address("10.0.0.1")
PUBLIC = (IPv4Address("203.0.113.1"), IPv4Address("203.0.113.2"))
INSIDE_PORTS = frozenset({1, 2, 4})
OUTSIDE_PORTS = frozenset({3})
SIDE_PORTS = INSIDE_PORTS | OUTSIDE_PORTS
PORTS = (1, 2, 3, 4, 5, 6)  # 5 and 6 are on neither side
TIMEOUTS = Timeouts(gre_idle=30, control_idle=60, closing_linger=5, stats_interval=10,
                    arp_retry=1.0, arp_give_up=3.0)
# Every timer has run out after these ticks (a second horizon catches what the first
# one's teardown started).
HORIZON = max(TIMEOUTS.gre_idle, TIMEOUTS.control_idle) + 1
DRAIN = (TIMEOUTS.arp_give_up + 1, TIMEOUTS.closing_linger + 1, HORIZON, HORIZON)
MAX_OPS = 64
MAX_LINKS = 8
SEQ = 1 << 32
ACK, PSH, FIN, RST, SYN = fr.TCP_ACK, fr.TCP_PSH, fr.TCP_FIN, fr.TCP_RST, fr.TCP_SYN


@dataclass(frozen=True)
class Node:
    """A scenario host: where it is plugged in."""

    host: Host
    port: int


def _node(mac: str, ip: str, port: int) -> Node:
    return Node(Host(mac, IPv4Address(ip), GW_MAC), port)


SRV = _node("02:00:00:00:00:10", "10.0.0.10", 1)  # behind the port forward of PUBLIC[0]
C1 = _node("02:00:00:00:00:11", "10.0.0.11", 2)
C2 = _node("02:00:00:00:00:12", "10.0.0.12", 2)
C3 = _node("02:00:00:00:00:13", "10.0.0.13", 4)
S = _node("02:00:00:00:00:99", "198.51.100.10", 3)  # a PPTP server out there
Q = _node("02:00:00:00:00:20", "192.0.2.20", 3)  # a PPTP client out there
R = _node("02:00:00:00:00:fe", "203.0.113.254", 3)  # the outside next hop (variant 2)
INSIDE = (SRV, C1, C2, C3)
OUTSIDE = (S, Q, R)
NODES = INSIDE + OUTSIDE
CALL_IDS = (0, 1, 7, 8, 0x31, 0x80, 0x100, 0xFFFF)
SPORTS = (40000, 40001, 1723, 50000)
VARIANTS = ("openflow", "ovs", "next-hop")

# Operations, by the value of their first byte (modulo their count).
OPS = ("open", "message", "mangled", "raw_tcp", "retransmit", "flush", "gre", "arp", "junk",
       "tick", "flow_removed", "disconnect", "connect", "restart", "barriers", "reorder",
       "forward", "stats", "script")
OP = {name: i for i, name in enumerate(OPS)}
# Counters of the gateway's teardowns: a finding is named by those its step made.
TEARDOWNS = ("unanswered_timeouts", "unanswered_early_drops", "control_idle_timeouts",
             "gre_idle_timeouts", "calls_closed", "connections_unrecoverable",
             "forward_sessions_torn_down")
# Presets (bits of the second byte).
LEARN, OUTBOUND_CALL, INBOUND_CALL, SHARED_KEY = 1, 2, 4, 8

# The largest neighbour table left after every timer ran out, over this process's inputs.
METRICS: dict[str, int] = {"neighbours_after_drain_max": 0}


@cache
def gateway_config(variant: int) -> GatewayConfig:
    document: dict[str, Any] = {
        "dpid": 1, "inside_ports": sorted(INSIDE_PORTS), "outside_ports": sorted(OUTSIDE_PORTS),
        "inside_address": f"{GW_IP}/24", "public_addresses": [str(p) for p in PUBLIC],
        "port_forwards": [{"public": str(PUBLIC[0]), "inside": str(SRV.host.ip)}],
        "gateway_mac": GW_MAC, "switch_profile": "ovs" if variant == 1 else "openflow"}
    if variant == 2:
        document["outside_next_hop"] = str(R.host.ip)
    return config_from_dict({"gateways": [document]}).gateways[0]


@dataclass
class Link:
    """A control connection as its two ends see it."""

    inbound: bool
    client: TcpEnd  # the PNS
    client_port: int
    server: TcpEnd  # the PAC
    server_port: int
    key: tuple[IPv4Address, int, IPv4Address, int]  # how the gateway indexes it
    sent: list[tuple[int, bytes]] = field(default_factory=list)  # for retransmissions
    held: list[tuple[int, bytes]] = field(default_factory=list)  # a gap in the stream
    ids: list[int] = field(default_factory=list)  # call IDs used on it lately

    def end(self, side: int) -> tuple[TcpEnd, int]:
        return (self.client, self.client_port) if side == 0 else (self.server, self.server_port)


class FuzzSwitch(FakeSwitch):
    """The fake switch, with what the indexes' check finds handed to the harness instead
    of asserted, so an input can go on past a known defect."""

    def apply(self, msgs: list[Any]) -> None:
        self.store.append(self.gateway.take_changes())
        self._apply(msgs)
        self.store.append(self.gateway.take_changes())
        self.check()

    def check(self) -> None:
        problems = self.gateway.problems()
        if problems:
            self.on_problems(problems)

    def on_problems(self, problems: list[str]) -> None:
        raise AssertionError("\n".join(problems))  # the harness puts its own in


class Fatal(Exception):
    """The gateway's records are inconsistent: nothing after this step means anything."""


class Harness:
    def __init__(self, variant: int) -> None:
        self.variant = variant
        self.clock = FakeClock()
        self.switch = FuzzSwitch.create(gateway_config(variant), self.clock, TIMEOUTS)
        self.switch.on_problems = self.problems  # type: ignore[method-assign]
        self.connected = True
        self.links: list[Link] = []
        self.found: dict[str, Finding] = {}
        self.seen = 0  # wire entries checked so far
        self.trace: list[str] = []  # the operations run, for the findings' details
        # GRE flows reported as orphans, and as missing: each once, at the step it began.
        self.orphans: set[tuple[int, int, IPv4Address, IPv4Address]] = set()
        self.missing: set[tuple[int, int, IPv4Address, IPv4Address]] = set()

    @property
    def gw(self) -> Gateway:
        return self.switch.gateway

    def add(self, cls: str, detail: str = "") -> None:
        self.found.setdefault(cls, Finding(cls, detail))

    # --- hosts as the gateway sees them --------------------------------------------------

    def view(self, node: Node) -> Host:
        """Behind the outside next hop, outside hosts' frames carry the router's MAC."""
        if self.variant == 2 and node.port in OUTSIDE_PORTS:
            return Host(R.host.mac, node.host.ip, GW_MAC)
        return node.host

    def node_of(self, address: IPv4Address) -> Node:
        for node in NODES:
            if node.host.ip == address:
                return node
        mac = "02:00:" + address.packed.hex(":")
        return Node(Host(mac, address, GW_MAC), 1 if address in LAN else 3)

    # --- the switch, connected or not ----------------------------------------------------

    def problems(self, problems: list[str]) -> None:
        """Indexes that differ from their rebuilt form (or records that refer to nothing):
        one finding per index. Past a known defect the input goes on (its reproducer is
        in test_findings.py); past anything else nothing after this step means anything."""
        names = sorted({p.split(":")[0] if p.startswith("index ") else normalise(p)
                        for p in problems})
        fatal = False
        for name in names:
            cls = f"records or indexes inconsistent: {name}"
            self.add(cls, "\n".join(p for p in problems if p.startswith(name) or
                                    not p.startswith("index ")))
            fatal = fatal or known.test_for(cls) is None
        if fatal:
            raise Fatal

    def apply(self, msgs: list[Any]) -> None:
        """Messages of an event that is not a packet (lost while disconnected, but the
        records are written all the same, as the app does)."""
        if self.connected:
            self.switch.apply(msgs)
        else:
            self.switch.store.append(self.gw.take_changes())
            self.switch.check()

    def send(self, port: int, frame: bytes) -> None:
        try:
            fields = frame_fields(frame, port)
        except fr.FrameError:  # the switch reads headers only: say it reached the controller
            fields = None
        if fields is None:
            if self.connected:
                self.switch.apply(self.gw.packet_in(port, frame, 0))
        elif self.connected:
            self.switch.send(port, frame)
        else:  # the flows still forward; packet-ins are lost
            for out in self.switch.table.lookup(fields):
                if out["out_port"] != ofp.OFPP_CONTROLLER:
                    self.switch.wire.append(Sent(out["out_port"], None, out))

    def tick(self, seconds: float) -> None:
        if self.connected:
            self.switch.tick(self.clock, seconds)
            return
        self.clock.now += seconds
        self.switch.table.advance(seconds)  # flow-removed messages are lost
        self.apply(self.gw.tick())

    def connect(self) -> None:
        self.connected = True
        self.switch.apply(self.gw.datapath_up())

    # --- checks --------------------------------------------------------------------------

    def check_step(self, before: Counter[str] | None = None, label: str = "") -> None:
        """After every operation: what left the switch, the neighbour table, the GRE
        flows. ``before``: the gateway's counters before the step, to tell what the step
        tore down (or ``label`` says when this is)."""
        self.check_flows(label or self.teardowns(before))
        wire = self.switch.wire
        for sent in wire[self.seen:]:
            self._check_sent(sent)
        self.seen = len(wire)
        if len(wire) > 4096:
            del wire[:]
            self.seen = 0
        state = self.gw.state
        # The side each address is reached on, as the gateway's own records say.
        outside = {c.outside[0] for c in state.conns.values()} \
            | {p.outside_ip for p in state.pairs.values()}
        inside = {c.inside[0] for c in state.conns.values()} \
            | {p.inside_ip for p in state.pairs.values()}
        if self.variant == 2:  # outside peers are reached through the router
            outside = {R.host.ip}
        for address, hop in self.gw.neighbours.table.items():
            where = f"{address} at {hop.mac} on port {hop.port}"
            if hop.port not in SIDE_PORTS:
                self.add("neighbour learnt on a port on neither side", where)
            elif address in LAN and hop.port in OUTSIDE_PORTS:
                self.add("neighbour for a LAN address learnt on an outside port", where)
            elif address in outside and hop.port in INSIDE_PORTS:
                self.add("an outside peer's address is learnt on an inside port", where)
            elif address in inside and hop.port in OUTSIDE_PORTS:
                self.add("an inside peer's address is learnt on an outside port", where)
            if address == GW_IP or address in PUBLIC:
                self.add("neighbour learnt for one of the gateway's own addresses", where)
        for conn in state.conns.values():
            far = conn.outside[0]
            what = f"{conn.direction} {conn.client_ip}:{conn.client_port} -> " \
                   f"{conn.server_ip}:{conn.server_port} via {conn.public_ip}"
            if far in LAN:
                self.add(f"{conn.direction} control connection NATed towards a LAN address",
                         what)
            elif far in PUBLIC or far == GW_IP:
                self.add(f"{conn.direction} control connection NATed towards one of the "
                         "gateway's own addresses", what)

    def _check_sent(self, sent: Sent) -> None:
        port, fields = sent.port, sent.fields
        where = f"port {port}: {sorted((k, v) for k, v in fields.items() if k != 'len')}"
        if port not in SIDE_PORTS:
            self.add("a frame leaves by a port on neither side", where)
            return
        src, dst = fields.get("ipv4_src"), fields.get("ipv4_dst")
        if src is not None and IPv4Address(src) in PUBLIC and port in INSIDE_PORTS:
            lan_clients = {c.client_ip for c in self.gw.state.conns.values()
                           if c.inbound and c.client_ip in LAN}
            to = " (to the LAN client of an inbound connection)" \
                if dst is not None and IPv4Address(dst) in lan_clients else ""
            self.add(f"a frame with a public source address leaves by an inside port{to}",
                     where)
        if dst is not None and IPv4Address(dst) in LAN and port in OUTSIDE_PORTS:
            self.add("a frame to a LAN address leaves by an outside port", where)
        if src is not None and dst is not None and port in OUTSIDE_PORTS:
            ends = {(c.outside[0], c.inside[0]) for c in self.gw.state.conns.values()}
            ends |= {(p.outside_ip, p.inside_ip) for p in self.gw.state.pairs.values()}
            if (IPv4Address(src), IPv4Address(dst)) in ends:
                self.add("a frame for the inside end of a connection or pair leaves by an "
                         "outside port", where)
        if fields.get("arp_op") == fr.ARP_REPLY and fields.get("arp_sha") == GW_MAC:
            spa = IPv4Address(fields["arp_spa"])
            if (spa in PUBLIC) != (port in OUTSIDE_PORTS):
                self.add("the gateway answers ARP for an address of the other side", where)

    def teardowns(self, before: Counter[str] | None) -> str:
        """The teardowns a step made (from the gateway's counters), to name a finding by
        the mechanism that left it."""
        if before is None:
            return "after the preset"
        counters = self.gw.counters
        names = [name for name in TEARDOWNS if counters[name] != before[name]]
        return f"in a step with {', '.join(names)}" if names else "in a step with no teardown"

    def check_flows(self, when: str) -> None:
        """Every GRE flow is owned by a live pair or key; every flow they want is there."""
        if not self.connected:
            return
        gw = self.gw
        present = set()
        for flow in self.switch.table.flows(pipeline.TABLE_GRE):
            if _static(flow.table_id, flow.priority):  # check_other_flows has them
                continue
            src, dst = IPv4Address(flow.match["ipv4_src"]), IPv4Address(flow.match["ipv4_dst"])
            ident = (flow.cookie, flow.priority, src, dst)
            present.add(ident)
            problem = None if ident in self.orphans else self.orphan(flow.cookie, src, dst)
            if problem is not None:  # named by the step that left it
                self.orphans.add(ident)
                reorders = " on a switch that reorders" if self.switch.reorder else ""
                self.add(f"{problem} ({when}){reorders}",
                         f"cookie {flow.cookie:#x} {src} -> {dst}")
        for mod in gw.paths.flows():
            wanted = (mod.cookie, mod.priority, IPv4Address(mod.match["ipv4_src"]),
                      IPv4Address(mod.match["ipv4_dst"]))
            if wanted in present or wanted in self.missing:
                continue
            self.missing.add(wanted)  # named by the step that lost it
            where = f"cookie {mod.cookie:#x} {wanted[2]} -> {wanted[3]}"
            if any(p[1:] == wanted[1:] for p in present):  # same match: an ADD replaced it
                self.add(f"a GRE flow of one pair is replaced by another pair's with the same "
                         f"match ({when})", where)
            else:
                self.add(f"a GRE flow the records want is missing from the switch ({when})",
                         where)

    def check_other_flows(self, when: str) -> None:
        """Outside the GRE table, our flows are exactly what the records want: the static
        pipeline and the flows of answered control connections."""
        if not self.connected:
            return
        wanted = {flow_key(m.table_id, m.priority, m.cookie,
                           _display_match(_normalise_match(m.match)))
                  for m in self.gw.wanted_flows() if _static(m.table_id, m.priority)}
        present = {flow_key(f.table_id, f.priority, f.cookie, f.match)
                   for f in self.switch.table.flows()
                   if _static(f.table_id, f.priority) and pipeline.ours(f.cookie)}
        for what, keys in (("the records do not want is in", present - wanted),
                           ("the records want is missing from", wanted - present)):
            for key in sorted(keys, key=repr):
                decoded = pipeline.decode_cookie(key[2])
                kind = "an unknown" if decoded is None else f"a {decoded.kind.name.lower()}"
                whose = ""
                if decoded is not None and decoded.kind == pipeline.CookieKind.CONNECTION:
                    whose = " of a live connection" if decoded.ident in self.gw.state.conns \
                        else " of a connection that is gone"
                self.add(f"{kind} flow{whose} {what} the switch ({when})", repr(key))

    def orphan(self, cookie: int, src: IPv4Address, dst: IPv4Address) -> str | None:
        """Why a GRE flow is owned by nothing live (None: it is owned)."""
        state = self.gw.state
        decoded = pipeline.decode_cookie(cookie)
        if decoded is None or decoded.kind == pipeline.CookieKind.PIPELINE:
            return "a GRE flow that is no pair's and no key's"
        if decoded.kind == pipeline.CookieKind.GRE_PAIR:
            pair = state.pairs.get(decoded.ident)
            if pair is None:
                return "a GRE flow of a pair that is gone"
            if (src, dst) == (pair.inside_ip, pair.outside_ip):
                return None if pair.installed \
                    else "an outward GRE flow of a pair with no established call"
            if (src, dst) == pair.key:
                return None if state.idx.key_flows.get(pair.key) == pair.id \
                    else "an inward GRE flow of a pair that is not its key's fast pair"
            return "a GRE flow whose match is not its pair's"
        if state.idx.key_flows.get((src, dst)) != VIA_CONTROLLER \
                or self.gw.paths.key_cookie((src, dst)) != cookie:
            return "a via-controller GRE flow of no key that wants it"
        return None

    def check_store(self, when: str) -> None:
        """The state store holds exactly the live records (a restart brings back no more,
        no less)."""
        store = self.switch.store
        store.append(self.gw.take_changes(lazy=True))
        state = self.gw.state
        for kind, live in (("conn", state.conns), ("call", state.calls), ("pair", state.pairs)):
            kept = set(store.records.get(kind, {}))
            if kept != set(live):
                self.add(f"the state store's {kind} records differ from the live ones {when}",
                         f"stored only {sorted(kept - set(live))}, "
                         f"live only {sorted(set(live) - kept)}")

    def finish(self) -> None:
        """Reconnected and answered, checked; then every timer runs out, and nothing may
        be left."""
        self.switch.hold_barriers = False
        if not self.connected:
            self.connect()
        self.switch.release_barriers()
        self.check_step(label="after the script")
        self.check_other_flows("after the script")
        self.check_store("after the script")
        for seconds in DRAIN:
            before = Counter(self.gw.counters)
            self.tick(seconds)
            self.check_step(before)
        gw, state = self.gw, self.gw.state
        left = {"control connections": len(state.conns), "calls": len(state.calls),
                "GRE pairs": len(state.pairs),
                "GRE flows": sum((f.cookie, f.priority, IPv4Address(f.match["ipv4_src"]),
                                  IPv4Address(f.match["ipv4_dst"])) not in self.orphans
                                 for f in self.switch.gre_flows()),  # not reported yet
                "packets waiting for ARP": sum(len(p.waiting)
                                               for p in gw.neighbours.pending.values()),
                "ARP resolutions": len(gw.neighbours.pending),
                "packets held for barriers": sum(map(len, gw.fence._waiting.values())),
                "barriers awaited": len(gw.fence.held),
                "blocked hosts": len(gw.blocked)}
        for name, count in left.items():
            if count:
                self.add(f"{name} left after every timer ran out", f"{count} left")
        for index in dataclasses.fields(Indexes):
            if getattr(state.idx, index.name):
                self.add(f"index {index.name} not empty after every timer ran out",
                         repr(getattr(state.idx, index.name))[:500])
        self.check_other_flows("after every timer ran out")
        self.check_store("after every timer ran out")
        # Neighbours are a cache: entries may outlive every timer, within the table's
        # bound (its size is logged over the run).
        table = gw.neighbours.table
        METRICS["neighbours_after_drain_max"] = max(METRICS["neighbours_after_drain_max"],
                                                    len(table))
        bound = getattr(gw.neighbours, "max_entries", None)
        if bound is None or len(table) > bound:
            self.add("the neighbour table has no bound: one entry per junk source, forever",
                     f"{len(table)} entries after every timer ran out")

    # --- building blocks -----------------------------------------------------------------

    def conn(self, link: Link) -> Conn | None:
        idx = self.gw.state.idx
        return (idx.by_outside if link.inbound else idx.by_inside).get(link.key)

    def frame(self, end: TcpEnd, seq: int, flags: int, payload: bytes = b"") -> bytes:
        return end.host.tcp(end.peer_ip, end.port, end.peer_port, seq % SEQ, end.ack, flags,
                            payload)

    def emit(self, link: Link, port: int, frame: bytes) -> None:
        link.sent.append((port, frame))
        del link.sent[:-32]
        self.send(port, frame)

    def open(self, inbound: bool, node: Node, sport: int, dst: Node | IPv4Address, dport: int,
             isn: int, flags: int, source: IPv4Address | None = None) -> Link:
        """A control connection: SYN, then (flags) SYN-ACK, a duplicate SYN, a start.
        ``source``: the address the client claims (another host's: spoofed)."""
        claimed = source or node.host.ip
        if inbound:  # an outside client to a public address, forwarded inside
            assert isinstance(dst, IPv4Address)
            view = self.view(node)
            client = TcpEnd(Host(view.mac, claimed, GW_MAC), sport, dst, dport, isn)
            key = (claimed, sport, dst, dport)
        else:
            assert isinstance(dst, Node)
            client = TcpEnd(Host(node.host.mac, claimed, GW_MAC), sport, dst.host.ip, dport, isn)
            key = (claimed, sport, dst.host.ip, dport)
        syn = client.segment(SYN)
        self.send(node.port, syn)
        conn = self.conn_by(inbound, key)
        if inbound:
            server_node = self.node_of(conn.server_ip if conn else SRV.host.ip)
            server = TcpEnd(server_node.host, pptp.PPTP_PORT, claimed, sport, isn ^ 0x5555)
        else:
            assert isinstance(dst, Node)
            server_node = dst
            public = (conn.public_ip, conn.public_port) if conn else (PUBLIC[1], sport)
            server = TcpEnd(self.view(dst), dport, *public, isn ^ 0x5555)
        link = Link(inbound, client, node.port, server, server_node.port, key,
                    sent=[(node.port, syn)])
        self.links.append(link)
        del self.links[:-MAX_LINKS]
        if flags & 4:
            self.emit(link, node.port, syn)
        if flags & 1:
            server.ack = client.seq
            self.emit(link, server_node.port, server.segment(SYN | ACK))
            client.ack = server.seq
        if flags & 2:
            self.script_start(link, 1)
        return link

    def conn_by(self, inbound: bool, key: tuple[IPv4Address, int, IPv4Address, int]) \
            -> Conn | None:
        idx = self.gw.state.idx
        return (idx.by_outside if inbound else idx.by_inside).get(key)

    def deliver(self, link: Link, side: int, payload: bytes, mode: int, r: Reader | None,
                extra: int = 0) -> None:
        """One message's bytes from one end: whole (modes 0-2), split in order (3),
        split and shuffled (4), split with a piece twice (5), split with pieces held back
        (6), or whole with FIN (7)."""
        end, port = link.end(side)
        seq = end.seq
        flags = ACK | PSH | extra
        if mode == 7:
            flags |= FIN
        end.seq = (end.seq + len(payload) + (1 if flags & FIN else 0)) % SEQ
        if mode < 3 or mode == 7 or r is None or len(payload) < 2:
            self.emit(link, port, self.frame(end, seq, flags, payload))
            return
        cuts = sorted({1 + r.below(len(payload) - 1) for _ in range(1 + r.u8() % 4)})
        bounds = list(zip([0, *cuts], [*cuts, len(payload)], strict=True))
        if mode == 4:
            keys = [r.u8() for _ in bounds]
            bounds = [b for _, b in sorted(zip(keys, bounds, strict=True), key=lambda kb: kb[0])]
        elif mode == 5:
            bounds.insert(r.below(len(bounds) + 1), bounds[r.below(len(bounds))])
        for start, stop in bounds:
            frame = self.frame(end, seq + start, flags, payload[start:stop])
            if mode == 6 and r.u8() & 1:
                link.held.append((port, frame))
            else:
                self.emit(link, port, frame)

    def message(self, r: Reader, link: Link, side: int) -> tuple[type[Any], bytes]:
        cls = pptp.MESSAGE_CLASSES[pptp.ControlMessageType(1 + r.u8() % 15)]
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in cls.CALL_ID_FIELDS:
                values[f.name] = self.call_id(r, link)
            elif f.name == "result_code":
                values[f.name] = self.choose(r, (1, 1, 1, 2, 0), 1)
        return cls, pptp.build(cls(**values))

    def choose(self, r: Reader, options: tuple[int, ...], width: int) -> int:
        i = r.u8() % (len(options) + 1)
        return r.uint(width) if i == len(options) else options[i]

    def call_id(self, r: Reader, link: Link | None) -> int:
        """Mostly IDs that mean something to the gateway: its calls', this link's."""
        ids = self.known_ids(link)
        choice = r.u8()
        if ids and choice < 160:
            value = ids[choice % len(ids)]
        elif choice < 240:
            value = CALL_IDS[choice % len(CALL_IDS)]
        else:
            value = r.u16()
        if link is not None:
            link.ids.append(value)
            del link.ids[:-8]
        return value

    def known_ids(self, link: Link | None) -> list[int]:
        state = self.gw.state
        conn = None if link is None else self.conn(link)
        calls = state.calls.values() if conn is None else state.calls_of(conn)
        ids = {i for c in calls for i in (c.client_call_id, c.public_call_id, c.server_call_id)
               if i is not None}
        if conn is not None and conn.id_map:
            ids |= set(conn.id_map) | set(conn.id_map.values())
        return sorted(ids | set(link.ids if link else ()))

    def public_id(self, link: Link, client_id: int) -> int:
        """The call ID the server saw for the client's ``client_id``."""
        conn = self.conn(link)
        if conn is None:
            return client_id
        call = self.gw.state.call_by(conn, "client_call_id", client_id)
        return call.public_call_id if call is not None else conn.public_id(client_id)

    def say(self, link: Link, side: int, msg: Any) -> None:
        self.deliver(link, side, pptp.build(msg), 0, None)

    def script_start(self, link: Link, result: int) -> None:
        self.say(link, 0, pptp.StartControlConnectionRequest())
        self.say(link, 1, pptp.StartControlConnectionReply(result_code=result))

    def script_call(self, link: Link, client_id: int, server_id: int, result: int) -> None:
        self.say(link, 0, pptp.OutgoingCallRequest(call_id=client_id))
        self.say(link, 1, pptp.OutgoingCallReply(
            call_id=server_id, peer_call_id=self.public_id(link, client_id), result_code=result))
        link.ids += [client_id, server_id]

    def learn_all(self) -> None:
        for node in NODES:
            if self.variant == 2 and node.port in OUTSIDE_PORTS and node is not R:
                continue  # behind the router: never on the link
            target = GW_IP if node.port in INSIDE_PORTS else PUBLIC[0]
            self.send(node.port, node.host.arp_request(target))

    # --- operations decoded from the fuzzer's bytes --------------------------------------

    def link(self, r: Reader) -> Link | None:
        return self.links[r.below(len(self.links))] if self.links else None

    def op_open(self, r: Reader) -> None:
        inbound = bool(r.u8() & 1)
        sport = self.choose(r, SPORTS, 2)
        isn, flags = r.u32(), r.u8()
        # Flag 8: the client claims another scenario host's address (either side's).
        source = r.pick(NODES).host.ip if flags & 8 else None
        if inbound:
            self.open(True, r.pick((S, Q)), sport, r.pick(PUBLIC), pptp.PPTP_PORT, isn, flags,
                      source)
        else:  # to an outside server mostly; to an inside host through the gateway's MAC too
            dst = r.pick((S, Q, S, Q, C2, SRV))
            dport = self.choose(r, (1723, 1723, 1723), 2)
            self.open(False, r.pick(INSIDE), sport, dst, dport, isn, flags, source)

    def op_message(self, r: Reader) -> None:
        link = self.link(r)
        if link is not None:
            side = r.u8() & 1
            _, payload = self.message(r, link, side)
            self.deliver(link, side, payload, r.u8() % 8, r)

    def op_mangled(self, r: Reader) -> None:
        link = self.link(r)
        if link is None:
            return
        side = r.u8() & 1
        cls, payload = self.message(r, link, side)
        self.deliver(link, side, mangle(r, cls, payload), r.u8() % 8, r)

    def op_raw_tcp(self, r: Reader) -> None:
        """A segment with any flags, at, behind, ahead of or far from the stream."""
        link = self.link(r)
        if link is None:
            return
        side = r.u8() & 1
        end, port = link.end(side)
        flags = self.choose(r, (ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, SYN, SYN | ACK,
                                FIN | PSH | ACK), 1)
        payload = r.blob(64)
        where = r.u8() % 4
        if where == 0:
            seq = end.seq
            end.seq = (end.seq + len(payload) + bool(flags & FIN) + bool(flags & SYN)) % SEQ
        elif where == 1:
            seq = end.seq - 1 - r.u8()
        elif where == 2:
            seq = end.seq + 1 + r.u16()
        else:
            seq = r.u32()
        self.emit(link, port, self.frame(end, seq, flags, payload))

    def op_retransmit(self, r: Reader) -> None:
        link = self.link(r)
        if link is not None and link.sent:
            port, frame = link.sent[r.below(len(link.sent))]
            self.send(port, frame)

    def op_flush(self, r: Reader) -> None:
        link = self.link(r)
        if link is None or not link.held:
            return
        held, link.held = link.held, []
        if r.u8() & 1:
            held.reverse()
        for port, frame in held:
            self.emit(link, port, frame)

    def op_gre(self, r: Reader) -> None:
        node = r.pick(NODES)
        dst = r.pick((PUBLIC[0], PUBLIC[1], PUBLIC[1], S.host.ip, Q.host.ip, C1.host.ip,
                      SRV.host.ip, None))
        if dst is None:
            dst = IPv4Address(r.u32())
        call_id = self.call_id(r, None)
        kind = r.u8() % 8
        gre = build_gre(EnhancedGre(call_id, r.blob(32), r.u32() if kind & 1 else None,
                                    r.u32() if kind == 2 else None))
        if kind == 4:
            gre = gre[:r.below(len(gre))]
        elif kind == 5:  # version 0
            gre = bytes([gre[0], gre[1] & 0xF8]) + gre[2:]
        elif kind == 6:  # a flag that must be clear
            gre = bytes([gre[0] | 0x80]) + gre[1:]
        elif kind == 7:  # not PPP
            gre = gre[:2] + b"\x08\x00" + gre[4:]
        port = node.port if r.u8() < 224 else r.pick(PORTS)
        ttl = self.choose(r, (64, 64, 1, 2), 1)
        self.send(port, self.view(node).ipv4(dst, fr.IP_PROTO_GRE, gre, ttl=ttl))

    def op_arp(self, r: Reader) -> None:
        """Any opcode, any sender address (its own, another host's, ours, none, random),
        for our addresses or others', from any port."""
        node = r.pick(NODES)
        opcode = self.choose(r, (fr.ARP_REQUEST, fr.ARP_REPLY, fr.ARP_REQUEST, fr.ARP_REPLY,
                                 0, 3), 2)
        sender = r.pick((node.host.ip, node.host.ip, node.host.ip, S.host.ip, C1.host.ip,
                         GW_IP, PUBLIC[0], IPv4Address(0), None))
        if sender is None:
            sender = IPv4Address(r.u32())
        target = r.pick((GW_IP, PUBLIC[0], PUBLIC[1], S.host.ip, None))
        if target is None:
            target = IPv4Address(r.u32())
        port = node.port if r.u8() < 192 else r.pick(PORTS)
        mac = node.host.mac
        arp = fr.Arp(opcode, mac, sender, fr.ZERO_MAC if opcode == 1 else GW_MAC, target)
        frame = fr.build_ethernet(fr.Ethernet(fr.BROADCAST_MAC if opcode == 1 else GW_MAC, mac,
                                              fr.ETH_TYPE_ARP, fr.build_arp(arp)))
        before = dict(self.gw.neighbours.table)
        self.send(port, frame)
        if opcode not in (fr.ARP_REQUEST, fr.ARP_REPLY) and self.gw.neighbours.table != before:
            self.add("neighbour learnt from an ARP that is neither request nor reply",
                     f"opcode {opcode}, {sender} at {mac} on port {port}")

    def op_junk(self, r: Reader) -> None:
        port = r.pick(PORTS)
        kind = r.u8() % 6
        mac = "02:" + r.take(5).ljust(5, b"\0").hex(":")
        what = r.u8() % 3  # any address, a LAN one, or a scenario host's (spoofed)
        src = IPv4Address(r.u32()) if what == 0 else IPv4Address(int(LAN[0]) + r.u8()) \
            if what == 1 else r.pick(NODES).host.ip
        dst = r.pick((PUBLIC[0], PUBLIC[1], S.host.ip, C1.host.ip))
        host = Host(mac, src, GW_MAC)
        if kind == 0:
            frame = r.blob()
        elif kind == 1:
            ethertype = self.choose(r, (fr.ETH_TYPE_IPV4, fr.ETH_TYPE_ARP, 0x86DD, 0x8100), 2)
            frame = fr.build_ethernet(fr.Ethernet(GW_MAC, mac, ethertype, r.blob()))
        elif kind == 2:  # TCP/1723 from a source nobody knows: a junk source
            sport, dport = (pptp.PPTP_PORT, r.u16()) if r.u8() & 1 else (r.u16(), pptp.PPTP_PORT)
            flags = self.choose(r, (ACK, SYN, RST, SYN | ACK, FIN | ACK), 1)
            frame = host.tcp(dst, sport, dport, r.u32(), r.u32(), flags, r.blob(32))
        elif kind == 3:  # neither TCP nor GRE
            frame = host.ipv4(dst, self.choose(r, (1, 17), 1), r.blob(32))
        elif kind == 4:  # a fragment of TCP/1723
            segment = fr.build_tcp(fr.Tcp(r.u16(), pptp.PPTP_PORT, 0, 0, ACK, r.blob(32)),
                                   src, dst)
            packet = fr.build_ipv4(fr.Ipv4(src, dst, fr.IP_PROTO_TCP, segment,
                                           flags_fragment=self.choose(r, (0x2000, 0x0001), 2)))
            frame = fr.build_ethernet(fr.Ethernet(GW_MAC, mac, fr.ETH_TYPE_IPV4, packet))
        else:  # a bad TCP checksum, or bytes cut off
            frame = host.tcp(dst, r.u16(), pptp.PPTP_PORT, r.u32(), 0, ACK, r.blob(16))
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF]) if r.u8() & 1 \
                else frame[:r.below(len(frame))]
        self.send(port, frame)

    def op_tick(self, r: Reader) -> None:
        self.tick(self.choose(r, (1, 1, 1, 2, 3, 5, 10, 31, 61), 1) or 0.5)

    def op_flow_removed(self, r: Reader) -> None:
        """Any cookie and reason. A timeout takes one of the cookie's flows that has that
        timeout from the table first, as a switch would (a flow without one never times
        out); otherwise the message is a stray one (an echo of our own delete, a bogus
        cookie)."""
        state = self.gw.state
        cookies = [pair_cookie(p) for p in state.pairs.values()]
        cookies += [self.gw.paths.key_cookie(k) for k in state.idx.key_flows]
        cookies += [pipeline.cookie(pipeline.CookieKind.GRE_PAIR, 1 + r.u8()), r.uint(8)]
        cookie = cookies[r.below(len(cookies))]
        reason = self.choose(r, (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_IDLE_TIMEOUT,
                                 ofp.OFPRR_HARD_TIMEOUT, ofp.OFPRR_DELETE), 1)
        packets, octets = r.u8(), r.u16()
        if not self.connected:
            return
        if reason in (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_HARD_TIMEOUT):
            timeout = "idle_timeout" if reason == ofp.OFPRR_IDLE_TIMEOUT else "hard_timeout"
            flows = [f for f in self.switch.table.flows()
                     if f.cookie == cookie and getattr(f, timeout)]
            if flows:
                gone = flows[r.below(len(flows))]
                self.switch.table.tables[gone.table_id].remove(gone)
                if not gone.flags & ofp.OFPFF_SEND_FLOW_REM:
                    return
        self.apply(self.gw.flow_removed(cookie, reason, packets, octets))

    def op_disconnect(self, r: Reader) -> None:
        self.gw.datapath_down()
        self.connected = False
        if r.u8() & 1:  # the switch restarted too: its flows are gone
            self.switch.table = FakeOFTable()

    def op_connect(self, r: Reader) -> None:
        self.connect()  # connected already: a second datapath_up (a quick reconnect)

    def op_restart(self, r: Reader) -> None:
        self.switch.restart_controller(bool(r.u8() & 1))
        self.connected = True

    def op_barriers(self, r: Reader) -> None:
        what = r.u8() % 3
        if what < 2:
            self.switch.hold_barriers = what == 0
        elif self.connected:
            self.switch.release_barriers()

    def op_reorder(self, r: Reader) -> None:
        # Only where the profile allows it: switch_profile ovs says the switch never
        # reorders (Open vSwitch), so the gateway sends it no barriers.
        reorder = bool(r.u8() & 1)
        self.switch.reorder = reorder and self.gw.config.capabilities.barriers

    def op_forward(self, r: Reader) -> None:
        public = r.pick(PUBLIC)
        if r.u8() & 1:
            try:
                self.gw.add_forward(PortForward(public, r.pick(INSIDE).host.ip))
            except ValueError:
                return  # already forwarded
            self.apply([])
        else:
            try:
                msgs = self.gw.remove_forward(public)
            except KeyError:
                return  # not forwarded
            self.apply(msgs)

    def op_stats(self, r: Reader) -> None:
        if self.connected:
            self.apply(self.gw.flow_stats(self.switch.flow_entries()))

    def op_script(self, r: Reader) -> None:
        """Well-formed exchanges, to get deep quickly: start, outgoing call, incoming call,
        clear, stop."""
        link = self.link(r)
        if link is None:
            return
        kind = r.u8() % 5
        if kind == 0:
            self.script_start(link, self.choose(r, (1, 1, 2), 1))
        elif kind == 1:
            self.script_call(link, self.call_id(r, link), self.call_id(r, link),
                             self.choose(r, (1, 1, 1, 2), 1))
        elif kind == 2:
            server_id, client_id = self.call_id(r, link), self.call_id(r, link)
            self.say(link, 1, pptp.IncomingCallRequest(call_id=server_id))
            self.say(link, 0, pptp.IncomingCallReply(call_id=client_id, peer_call_id=server_id))
            self.say(link, 1, pptp.IncomingCallConnected(
                peer_call_id=self.public_id(link, client_id)))
        elif kind == 3:
            self.say(link, 0, pptp.CallClearRequest(call_id=self.call_id(r, link)))
            self.say(link, 1, pptp.CallDisconnectNotify(call_id=self.call_id(r, link)))
        else:
            self.say(link, 0, pptp.StopControlConnectionRequest())
            self.say(link, 1, pptp.StopControlConnectionReply())
            if r.u8() & 1:
                for side in (0, 1):
                    end, port = link.end(side)
                    self.emit(link, port, self.frame(end, end.seq, FIN | ACK))
                    end.seq = (end.seq + 1) % SEQ

    def preset(self, bits: int) -> None:
        if bits & LEARN:
            self.learn_all()
        if bits & OUTBOUND_CALL:
            link = self.open(False, C1, 40000, S, pptp.PPTP_PORT, 1000, 3)
            self.script_call(link, 7, 0x80, 1)
        if bits & INBOUND_CALL:
            link = self.open(True, Q, 50000, PUBLIC[0], pptp.PPTP_PORT, 7000, 3)
            self.script_call(link, 0x31, 0x90, 1)
        if bits & SHARED_KEY:  # same server, same call ID: one of them is translated
            for node, server_id in ((C2, 0x100), (C3, 0x101)):
                link = self.open(False, node, 40001, S, pptp.PPTP_PORT, 3000, 3)
                self.script_call(link, 7, server_id, 1)


def _static(table_id: int, priority: int) -> bool:
    """Outside the per-pair and per-key GRE flows: checked against ``wanted_flows``."""
    return table_id != pipeline.TABLE_GRE or priority <= pipeline.Priority.GRE_OUTWARD_UNMATCHED


def flow_key(table: int, priority: int, cookie: int, match: dict[str, Any]) \
        -> tuple[int, int, int, tuple[tuple[str, Any], ...]]:
    return table, priority, cookie, tuple(sorted(match.items()))


def mangle(r: Reader, cls: type[Any], message: bytes) -> bytes:
    """A message made wrong in one way: a bit, its length, its type, a reserved field, its
    cookie, its PPTP type, cut short or with bytes after it."""
    kind = r.u8() % 9
    data = bytearray(message)
    if kind == 0:
        i = r.below(len(data))
        data[i] ^= 1 << r.u8() % 8
    elif kind == 1:
        del data[r.below(len(data)):]
    elif kind == 2:
        value = r.pick((0, 1, 12, 15, len(data) - 1, len(data) + 1, 0xFFFF, None))
        data[0:2] = (r.u16() if value is None else value).to_bytes(2, "big")
    elif kind == 3:
        value = r.pick((0, 16, 99, 0xFFFF, None))
        data[8:10] = (r.u16() if value is None else value).to_bytes(2, "big")
    elif kind == 4:
        data[10:12] = (r.u16() or 1).to_bytes(2, "big")
    elif kind == 5:
        reserved = [name for name, _ in cls._LAYOUT if name.startswith("reserved")]
        if reserved:
            at = pptp._field_offset(cls, r.pick(reserved))
            data[at] = r.u8() or 1
        else:
            data[-1] = r.u8() or 1  # a string's NUL padding
    elif kind == 6:
        data[4:8] = r.take(4).ljust(4, b"\1")
    elif kind == 7:
        data[2:4] = (2).to_bytes(2, "big")
    else:
        data += r.blob(32)
    return bytes(data)


def run(data: bytes) -> list[Finding]:
    r = Reader(data)
    harness = Harness(r.u8() % len(VARIANTS))
    try:
        harness.preset(r.u8())
        harness.check_step()
        for _ in range(MAX_OPS):
            if not r.more():
                break
            name = OPS[r.u8() % len(OPS)]
            harness.trace.append(name)
            before = Counter(harness.gw.counters)
            getattr(harness, f"op_{name}")(r)
            harness.check_step(before)
        harness.finish()
    except Fatal:
        pass
    ops = f"\nvariant {VARIANTS[harness.variant]}; operations: {' '.join(harness.trace)}"
    return [Finding(f.cls, f.detail + ops) for f in harness.found.values()]
