"""GRE address pairs: the unit the switch can forward.

OpenFlow cannot match the GRE key, only addresses. A *pair* is one inside
client talking GRE to one server through one public address; its flows are
shared and reference-counted by the calls that use it. Server-to-client GRE is
identified by (server, public address) alone, so a pair is *fast* (both
directions in the switch) only while no other client uses the same
(server, public address); otherwise that direction goes to the controller.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg, pipeline
from ryu_pptp_alg.pipeline import CookieKind, Priority

if TYPE_CHECKING:
    from ryu_pptp_alg.session import Call


class PairState(StrEnum):
    PENDING = "pending"  # call requested: server-to-client GRE goes to the controller
    INSTALLED = "installed"  # address-rewrite flows sent (and confirmed by a barrier)


@dataclass(frozen=True)
class Hop:
    """Where a rewritten packet goes: next-hop MAC and switch port."""

    mac: str
    port: int


@dataclass(eq=False)
class GrePair:
    ident: int
    client_ip: IPv4Address
    server_ip: IPv4Address
    public_ip: IPv4Address
    to_client: Hop
    to_server: Hop
    state: PairState = PairState.PENDING
    fast: bool = False  # server-to-client GRE is forwarded by the switch
    calls: set[Call] = field(default_factory=set)
    # Counters of the pair's live flows (flow stats) and of flows already gone.
    live_packets: dict[int, int] = field(default_factory=dict)  # by priority (direction)
    live_bytes: dict[int, int] = field(default_factory=dict)
    removed_packets: int = 0
    removed_bytes: int = 0

    @property
    def cookie(self) -> int:
        return pipeline.cookie(CookieKind.GRE_PAIR, self.ident)

    @property
    def shared_key(self) -> tuple[IPv4Address, IPv4Address]:
        return (self.server_ip, self.public_ip)

    def traffic(self) -> tuple[int, int]:
        return (self.removed_packets + sum(self.live_packets.values()),
                self.removed_bytes + sum(self.live_bytes.values()))


def _gre_match(src: IPv4Address, dst: IPv4Address) -> parser.OFPMatch:
    return ofmsg.match(eth_type=ofmsg.ETH_TYPE_IPV4, ip_proto=ofmsg.IP_PROTO_GRE,
                       ipv4_src=str(src), ipv4_dst=str(dst))


def to_server_flow(pair: GrePair, gateway_mac: str, idle_timeout: int) -> parser.OFPFlowMod:
    """Client to server: source becomes the public address."""
    actions = [ofmsg.set_field(eth_src=gateway_mac), ofmsg.set_field(eth_dst=pair.to_server.mac),
               ofmsg.set_field(ipv4_src=str(pair.public_ip)), ofmsg.dec_ip_ttl(),
               ofmsg.output(pair.to_server.port)]
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_PAIR,
                          _gre_match(pair.client_ip, pair.server_ip),
                          [ofmsg.apply_actions(actions)], pair.cookie,
                          idle_timeout=idle_timeout, send_flow_removed=True)


def to_client_flow(pair: GrePair, gateway_mac: str, idle_timeout: int) -> parser.OFPFlowMod:
    """Server to public address: destination becomes the client."""
    actions = [ofmsg.set_field(eth_src=gateway_mac), ofmsg.set_field(eth_dst=pair.to_client.mac),
               ofmsg.set_field(ipv4_dst=str(pair.client_ip)), ofmsg.dec_ip_ttl(),
               ofmsg.output(pair.to_client.port)]
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_PAIR,
                          _gre_match(pair.server_ip, pair.public_ip),
                          [ofmsg.apply_actions(actions)], pair.cookie,
                          idle_timeout=idle_timeout, send_flow_removed=True)


def to_controller_flow(pair: GrePair) -> parser.OFPFlowMod:
    """Server to public address, via the controller (pending or shared pair)."""
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_VIA_CONTROLLER,
                          _gre_match(pair.server_ip, pair.public_ip),
                          [ofmsg.apply_actions([ofmsg.output_controller()])], pair.cookie)


def delete_to_controller_flow(pair: GrePair) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(None, table_id=pipeline.TABLE_GRE,
                             command=ofp.OFPFC_DELETE_STRICT,
                             priority=Priority.GRE_VIA_CONTROLLER, cookie=pair.cookie,
                             cookie_mask=0xFFFFFFFFFFFFFFFF, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY,
                             match=_gre_match(pair.server_ip, pair.public_ip))


def delete_pair_flows(pair: GrePair) -> parser.OFPFlowMod:
    return ofmsg.flow_delete(pair.cookie, 0xFFFFFFFFFFFFFFFF, table_id=pipeline.TABLE_GRE)


class PairTable:
    """The pairs of one gateway, by client/server/public and by (server, public)."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[IPv4Address, IPv4Address, IPv4Address], GrePair] = {}
        self._by_ident: dict[int, GrePair] = {}
        self._next_ident = 1

    def __iter__(self) -> Iterator[GrePair]:
        return iter(list(self._pairs.values()))

    def __len__(self) -> int:
        return len(self._pairs)

    def get(self, client: IPv4Address, server: IPv4Address,
            public: IPv4Address) -> GrePair | None:
        return self._pairs.get((client, server, public))

    def by_cookie(self, cookie: int) -> GrePair | None:
        decoded = pipeline.decode_cookie(cookie)
        if decoded is None or decoded.kind != CookieKind.GRE_PAIR:
            return None
        return self._by_ident.get(decoded.ident)

    def sharing(self, server: IPv4Address, public: IPv4Address) -> list[GrePair]:
        """Pairs of every client that reaches ``server`` through ``public``."""
        return [p for p in self._pairs.values() if p.shared_key == (server, public)]

    def add(self, client: IPv4Address, server: IPv4Address, public: IPv4Address,
            to_client: Hop, to_server: Hop) -> GrePair:
        pair = GrePair(self._next_ident, client, server, public, to_client, to_server)
        self._next_ident = self._next_ident % pipeline.COOKIE_ID_MASK + 1
        self._pairs[(client, server, public)] = pair
        self._by_ident[pair.ident] = pair
        return pair

    def remove(self, pair: GrePair) -> None:
        self._pairs.pop((pair.client_ip, pair.server_ip, pair.public_ip), None)
        self._by_ident.pop(pair.ident, None)
