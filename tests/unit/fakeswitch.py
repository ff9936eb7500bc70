"""A gateway wired to the fake OpenFlow table: packets in, packets out, no switch.

``FakeSwitch.send(port, frame)`` pushes a frame through the installed flows;
what the flows send to the controller goes to the gateway, whose messages are
applied back (flow-mods to the table, packet-outs to the wire, barriers
answered unless ``hold_barriers``). Everything that leaves a port is recorded
in ``wire`` as ``(port, frame_bytes_or_field_dict)``, and every message in
``messages`` in the order the switch executed it: as sent, or with
``reorder`` each run between barriers last-first, which the OpenFlow spec
allows a switch to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

import msgpack
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.gre import EnhancedGre, build_gre
from ryu_pptp_alg.config import GatewayConfig, Timeouts
from ryu_pptp_alg.counters import CATALOGUE
from ryu_pptp_alg.flowtable import FlowEntry, instructions_key
from ryu_pptp_alg.gateway import Gateway
from tests.fakeoftable import FakeOFTable
from tests.unit.wire import assert_same_wire


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def frame_fields(data: bytes, in_port: int) -> dict[str, Any]:
    """The OXM fields of a frame, as the fake table matches them."""
    eth = fr.parse_ethernet(data)
    fields: dict[str, Any] = {"in_port": in_port, "eth_src": eth.src, "eth_dst": eth.dst,
                              "eth_type": eth.ethertype, "len": len(data)}
    if eth.ethertype == fr.ETH_TYPE_ARP:
        arp = fr.parse_arp(eth.payload)
        fields.update(arp_op=arp.op, arp_spa=str(arp.sender_ip), arp_tpa=str(arp.target_ip),
                      arp_sha=arp.sender_mac, arp_tha=arp.target_mac)
    elif eth.ethertype == fr.ETH_TYPE_IPV4:
        ip = fr.parse_ipv4(eth.payload)
        fields.update(ipv4_src=str(ip.src), ipv4_dst=str(ip.dst), ip_proto=ip.protocol,
                      ip_ttl=ip.ttl)
        if ip.protocol == fr.IP_PROTO_TCP and len(ip.payload) >= 4:
            fields.update(tcp_src=int.from_bytes(ip.payload[:2], "big"),
                          tcp_dst=int.from_bytes(ip.payload[2:4], "big"))
    return fields


@dataclass
class Sent:
    port: int
    frame: bytes | None  # packet-outs carry bytes
    fields: dict[str, Any]  # flow outputs carry rewritten fields only

    @property
    def via_controller(self) -> bool:
        return self.frame is not None


class MemoryStore:
    """The records a state store would hold, kept as the file store keeps them: every
    change taken from the gateway, through msgpack."""

    def __init__(self) -> None:
        self.records: dict[str, dict[Any, Any]] = {}

    def append(self, changes: list[tuple[str, Any, Any]]) -> None:
        for kind, ident, value in msgpack.unpackb(msgpack.packb(changes),
                                                  strict_map_key=False):
            kind_records = self.records.setdefault(kind, {})
            if value is None:
                kind_records.pop(ident, None)
            else:
                kind_records[ident] = value


@dataclass
class FakeSwitch:
    gateway: Gateway
    table: FakeOFTable = field(default_factory=FakeOFTable)
    wire: list[Sent] = field(default_factory=list)
    hold_barriers: bool = False
    pending_barriers: list[int] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    reorder: bool = False
    store: MemoryStore = field(default_factory=MemoryStore)
    connected: bool = True
    # Tables with room for this many flows: an addition past it is refused with
    # OFPET_FLOW_MOD_FAILED / TABLE_FULL, as OVS does with flow_limit and overflow_policy
    # refuse (what it holds counts, the drop flow too; replacing a flow is no addition).
    table_limits: dict[int, int] = field(default_factory=dict)
    refused: list[Any] = field(default_factory=list)
    meters: dict[int, Any] = field(default_factory=dict)  # meter id -> its OFPMeterMod

    @classmethod
    def create(cls, config: GatewayConfig, clock: FakeClock,
               timeouts: Timeouts | None = None) -> FakeSwitch:
        switch = cls(Gateway(config, timeouts, clock=clock))
        switch.apply(switch.gateway.datapath_up())
        return switch

    def restart_controller(self, lazy_written: bool = True) -> Gateway:
        """A new controller, from what the store holds, connects to this switch (whose
        flows stay): the old one is gone without another word, its barriers unanswered.
        ``lazy_written``: a second passed since the last change (what waits for the
        once-a-second write is in the store)."""
        old = self.gateway
        if lazy_written:
            self.store.append(old.take_changes(lazy=True))
        self.gateway = Gateway(old.config, old.timeouts, clock=old.clock)
        self.gateway.restore(self.store.records, "memory store")
        self.pending_barriers = []
        self.messages = []
        self.apply(self.gateway.datapath_up())
        return self.gateway

    def flow_entries(self) -> list[FlowEntry]:
        """Our flows, as a flow-stats reply with our cookie mask reports them."""
        return [FlowEntry(f.table_id, f.priority, f.cookie,
                          tuple(sorted(f.match.items())), instructions_key(f.instructions),
                          f.idle_timeout, f.packet_count, f.byte_count)
                for f in self.table.flows()
                if f.cookie & pipeline.COOKIE_TAG_MASK == pipeline.COOKIE_TAG]

    def apply(self, msgs: list[Any]) -> None:
        """Messages from the gateway, after the records they depend on are stored (as the
        app does); then the gateway's indexes must equal their rebuilt form."""
        self.store.append(self.gateway.take_changes())
        self._apply(msgs)
        self.store.append(self.gateway.take_changes())
        problems = self.gateway.problems()
        assert not problems, "\n".join(problems)
        unlisted = set(self.gateway.counters + self.gateway.neighbours.counters) \
            - set(CATALOGUE)
        assert not unlisted, f"counters not in ryu_pptp_alg/counters.py: {sorted(unlisted)}"

    def _apply(self, msgs: list[Any]) -> None:
        """Execute a batch; the switch's answers (errors, barrier replies) reach the
        gateway in order once the batch is done: never ahead of what was already sent."""
        answers: list[tuple[str, int]] = []
        for msg in self._execution_order(msgs):
            self.messages.append(msg)
            assert_same_wire(msg)  # what app.py would send is what Ryu would
            if isinstance(msg, parser.OFPPacketOut):
                for action in msg.actions:
                    port = msg.in_port if action.port == ofp.OFPP_IN_PORT else action.port
                    self.wire.append(Sent(port, bytes(msg.data), frame_fields(msg.data, port)))
            elif isinstance(msg, parser.OFPBarrierRequest):
                if msg.xid is None:
                    continue  # an ordering barrier nobody waits for
                if self.hold_barriers:
                    self.pending_barriers.append(msg.xid)
                else:
                    answers.append(("barrier", msg.xid))
            elif isinstance(msg, parser.OFPFlowMod) and self._table_full(msg):
                self.refused.append(msg)
                answers.append(("error", msg.xid or 0))
            elif isinstance(msg, parser.OFPMeterMod):
                exists = msg.meter_id in self.meters
                if (msg.command == ofp.OFPMC_ADD) != exists:  # the other one is refused
                    self.meters[msg.meter_id] = msg
            elif isinstance(msg, parser.OFPFlowStatsRequest):
                if msg.xid is not None:  # one the gateway waits for
                    self._apply(self.gateway.flow_stats(self.flow_entries(), msg.xid))
            else:
                self.table.apply([msg])
        for kind, xid in answers:
            if kind == "error":
                self._apply(self.gateway.error(xid, ofp.OFPET_FLOW_MOD_FAILED,
                                               ofp.OFPFMFC_TABLE_FULL))
            else:
                self._apply(self.gateway.barrier_reply(xid))

    def _table_full(self, msg: Any) -> bool:
        limit = self.table_limits.get(msg.table_id)
        if limit is None or msg.command != ofp.OFPFC_ADD:
            return False
        flows = self.table.flows(msg.table_id)
        match = dict(msg.match.items())
        replacing = any(f.priority == msg.priority and f.match == match for f in flows)
        return not replacing and len(flows) >= limit

    def _execution_order(self, msgs: list[Any]) -> list[Any]:
        if not self.reorder:
            return msgs
        order: list[Any] = []
        run: list[Any] = []
        for msg in msgs:
            if isinstance(msg, parser.OFPBarrierRequest):
                order.extend([*reversed(run), msg])
                run = []
            else:
                run.append(msg)
        return order + run[::-1]

    def release_barriers(self) -> None:
        pending, self.pending_barriers = self.pending_barriers, []
        for xid in pending:
            self.apply(self.gateway.barrier_reply(xid))

    def send(self, in_port: int, data: bytes) -> list[Sent]:
        """A frame arrives on ``in_port``; returns what left the switch because of it."""
        before = len(self.wire)
        for out in self.table.lookup(frame_fields(data, in_port)):
            if out["out_port"] == ofp.OFPP_CONTROLLER:
                self.apply(self.gateway.packet_in(in_port, data, out["cookie"]))
            else:
                self.wire.append(Sent(out["out_port"], None, out))
        return self.wire[before:]

    def tick(self, clock: FakeClock, seconds: float) -> None:
        clock.now += seconds
        for flow in self.table.advance(seconds):
            if flow.flags & ofp.OFPFF_SEND_FLOW_REM:
                self.apply(self.gateway.flow_removed(flow.cookie, ofp.OFPRR_IDLE_TIMEOUT,
                                                     flow.packet_count, flow.byte_count))
        self.apply(self.gateway.tick())

    def gre_flows(self) -> list[Any]:
        return [f for f in self.table.flows(1)
                if f.priority > pipeline.Priority.GRE_OUTWARD_UNMATCHED]


# --- frames the test peers send ----------------------------------------------------------

@dataclass
class Host:
    mac: str
    ip: IPv4Address
    gateway_mac: str

    def ipv4(self, dst: IPv4Address, protocol: int, payload: bytes, ttl: int = 64) -> bytes:
        packet = fr.build_ipv4(fr.Ipv4(self.ip, dst, protocol, payload, ttl=ttl))
        return fr.build_ethernet(fr.Ethernet(self.gateway_mac, self.mac, fr.ETH_TYPE_IPV4,
                                             packet))

    def tcp(self, dst: IPv4Address, sport: int, dport: int, seq: int, ack: int, flags: int,
            payload: bytes = b"") -> bytes:
        segment = fr.Tcp(sport, dport, seq, ack, flags, payload)
        return self.ipv4(dst, fr.IP_PROTO_TCP, fr.build_tcp(segment, self.ip, dst))

    def gre(self, dst: IPv4Address, call_id: int, payload: bytes = b"\xff\x03\xc0\x21") -> bytes:
        return self.ipv4(dst, fr.IP_PROTO_GRE,
                         build_gre(EnhancedGre(call_id=call_id, payload=payload, sequence=1)))

    def arp_reply(self, target: IPv4Address) -> bytes:
        arp = fr.Arp(fr.ARP_REPLY, self.mac, self.ip, self.gateway_mac, target)
        return fr.build_ethernet(fr.Ethernet(self.gateway_mac, self.mac, fr.ETH_TYPE_ARP,
                                             fr.build_arp(arp)))

    def arp_request(self, target: IPv4Address) -> bytes:
        arp = fr.Arp(fr.ARP_REQUEST, self.mac, self.ip, fr.ZERO_MAC, target)
        return fr.build_ethernet(fr.Ethernet(fr.BROADCAST_MAC, self.mac, fr.ETH_TYPE_ARP,
                                             fr.build_arp(arp)))


@dataclass
class TcpEnd:
    """One end of a TCP connection with its own sequence space."""

    host: Host
    port: int
    peer_ip: IPv4Address
    peer_port: int
    seq: int
    ack: int = 0

    def segment(self, flags: int, payload: bytes = b"") -> bytes:
        frame = self.host.tcp(self.peer_ip, self.port, self.peer_port, self.seq, self.ack,
                              flags, payload)
        self.seq = (self.seq + len(payload) + (1 if flags & (fr.TCP_SYN | fr.TCP_FIN) else 0)) \
            % 2**32
        return frame

    def message(self, msg: pptp.Message) -> bytes:
        return self.segment(fr.TCP_ACK | fr.TCP_PSH, pptp.build(msg))


def tcp_of(sent: Sent) -> tuple[fr.Ipv4, fr.Tcp]:
    """Parse a packet-out's IPv4/TCP, checking both checksums on the way."""
    assert sent.frame is not None
    ip = fr.parse_ipv4(fr.parse_ethernet(sent.frame).payload)
    return ip, fr.parse_tcp(ip.payload, ip.src, ip.dst)
