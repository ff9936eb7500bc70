"""GRE address pairs and keys: what the switch can forward.

OpenFlow cannot match the GRE key, only addresses. A *pair* is one inside host
talking GRE to one outside host through one public address: an inside client
and its server (outbound), or an inside server reached through a port forward
and an outside client (inbound). Its flows are shared and reference-counted by
the calls that use it. Outward GRE is always unambiguous (inside, outside).
Inward GRE is identified by its *key* (outside host, public address) alone, so
a pair is *fast* (both directions in the switch) only while it is the key's
only pair and none of its calls has a translated call ID (the switch cannot
rewrite the GRE key back). Otherwise the key's GRE goes to the controller,
which picks the call by the key's call ID.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg, pipeline
from ryu_pptp_alg.pipeline import CookieKind, Priority

if TYPE_CHECKING:
    from ryu_pptp_alg.session import Call


class PairState(StrEnum):
    PENDING = "pending"  # call requested: inward GRE goes to the controller
    INSTALLED = "installed"  # address-rewrite flows sent (and confirmed by a barrier)


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a rewritten packet goes: next-hop MAC and switch port."""

    mac: str
    port: int


@dataclass(slots=True)
class PairTraffic:
    """GRE counters of a pair: its live flows (from flow stats) and flows already gone."""

    outward_packets: int = 0
    outward_bytes: int = 0
    inward_packets: int = 0
    inward_bytes: int = 0
    removed_packets: int = 0
    removed_bytes: int = 0


@dataclass(eq=False, slots=True)
class GrePair:
    ident: int
    inside_ip: IPv4Address
    outside_ip: IPv4Address
    public_ip: IPv4Address
    to_inside: Hop
    to_outside: Hop
    state: PairState = PairState.PENDING
    fast: bool = False  # its gre_inward flow is installed: the switch forwards both ways
    calls: tuple[Call, ...] = ()  # usually one: a tuple is the smallest container
    counted: PairTraffic | None = None  # created when the switch first reports traffic

    @property
    def cookie(self) -> int:
        return pipeline.cookie(CookieKind.GRE_PAIR, self.ident)

    @property
    def key(self) -> tuple[IPv4Address, IPv4Address]:
        return (self.outside_ip, self.public_ip)

    @property
    def translated(self) -> bool:
        return any(call.public_call_id != call.client_call_id for call in self.calls)

    def traffic(self) -> tuple[int, int]:
        t = self.counted
        if t is None:
            return (0, 0)
        return (t.removed_packets + t.outward_packets + t.inward_packets,
                t.removed_bytes + t.outward_bytes + t.inward_bytes)

    def _traffic(self) -> PairTraffic:
        if self.counted is None:
            self.counted = PairTraffic()
        return self.counted

    def set_live(self, direction: str, packets: int, octets: int) -> None:
        t = self._traffic()
        if direction == "outward":
            t.outward_packets, t.outward_bytes = packets, octets
        else:
            t.inward_packets, t.inward_bytes = packets, octets

    def add_removed(self, packets: int, octets: int) -> None:
        """A flow of the pair is gone: keep what it counted."""
        t = self._traffic()
        t.removed_packets += packets
        t.removed_bytes += octets


@lru_cache(maxsize=256)  # recent keys only: a match object is large
def _gre_match(src: IPv4Address, dst: IPv4Address) -> parser.OFPMatch:
    # Fields already in OXM order and normal form: skips Ryu's slow normalisation. Shared
    # by a key's add and delete flow-mods (a match is never changed once built).
    return parser.OFPMatch(_ordered_fields=[
        ("eth_type", ofmsg.ETH_TYPE_IPV4), ("ip_proto", ofmsg.IP_PROTO_GRE),
        ("ipv4_src", str(src)), ("ipv4_dst", str(dst))])


def _rewrite_flow(pair: GrePair, match: parser.OFPMatch, hop: Hop, gateway_mac: str,
                  idle_timeout: int, **address: str) -> parser.OFPFlowMod:
    """Route a pair's GRE like a router (MACs, TTL) with one address rewritten."""
    actions = [ofmsg.set_field(eth_src=gateway_mac), ofmsg.set_field(eth_dst=hop.mac),
               ofmsg.set_field(**address), ofmsg.dec_ip_ttl(), ofmsg.output(hop.port)]
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_PAIR, match,
                          [ofmsg.apply_actions(actions)], pair.cookie,
                          idle_timeout=idle_timeout, send_flow_removed=True)


def outward_flow(pair: GrePair, gateway_mac: str, idle_timeout: int) -> parser.OFPFlowMod:
    """Inside host to outside host: the source becomes the public address."""
    return _rewrite_flow(pair, _gre_match(pair.inside_ip, pair.outside_ip), pair.to_outside,
                         gateway_mac, idle_timeout, ipv4_src=str(pair.public_ip))


def inward_flow(pair: GrePair, gateway_mac: str, idle_timeout: int) -> parser.OFPFlowMod:
    """Outside host to the public address: the destination becomes the inside host."""
    return _rewrite_flow(pair, _gre_match(pair.outside_ip, pair.public_ip), pair.to_inside,
                         gateway_mac, idle_timeout, ipv4_dst=str(pair.inside_ip))


@dataclass(eq=False, slots=True)
class GreKey:
    """Inward GRE of one (outside host, public address): via the controller or not; and
    which inside clients have control connections to that server through that address
    (the gateway keeps their GRE unambiguous by giving others another address)."""

    ident: int
    outside_ip: IPv4Address
    public_ip: IPv4Address
    via_controller: bool = False  # its gre_via_controller flow is installed
    fast_pair: GrePair | None = None  # the one pair whose gre_inward flow is installed
    # Every inside host's pair through this key, usually one.
    pairs: tuple[GrePair, ...] = ()
    # Outbound clients using the key: none, one, or the set of them once several share it.
    users: IPv4Address | set[IPv4Address] | None = None
    # The key's calls by the call ID its inward GRE carries: one, or a dict of several.
    calls: Call | dict[int, Call] | None = None

    @property
    def unused(self) -> bool:
        return not self.pairs and self.users is None and self.calls is None \
            and not self.via_controller and self.fast_pair is None

    def call(self, inward_id: int) -> Call | None:
        """The call whose inward GRE carries ``inward_id``."""
        calls = self.calls
        if isinstance(calls, dict):
            return calls.get(inward_id)
        return calls if calls is not None and calls.inward_id == inward_id else None

    def index_call(self, call: Call) -> None:
        """Inward GRE with ``call.inward_id`` (known by now) is the call's."""
        inward_id = call.inward_id
        assert inward_id is not None, "a call is indexed once its inward ID is known"
        calls = self.calls
        if isinstance(calls, dict):
            calls[inward_id] = call
        elif calls is None or calls.inward_id == inward_id:
            self.calls = call
        else:
            assert calls.inward_id is not None
            self.calls = {calls.inward_id: calls, inward_id: call}

    def unindex_call(self, call: Call) -> None:
        calls = self.calls
        if isinstance(calls, dict):
            inward_id = call.inward_id
            if inward_id is not None and calls.get(inward_id) is call:
                del calls[inward_id]
                if len(calls) == 1:
                    (self.calls,) = calls.values()
        elif calls is call:
            self.calls = None

    @property
    def cookie(self) -> int:
        return pipeline.cookie(CookieKind.GRE_KEY, self.ident)


def via_controller_flow(key: GreKey) -> parser.OFPFlowMod:
    """Outside host to public address, via the controller (pending or shared key)."""
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_VIA_CONTROLLER,
                          _gre_match(key.outside_ip, key.public_ip),
                          [ofmsg.apply_actions([ofmsg.output_controller()])], key.cookie)


def _delete_strict(priority: int, cookie: int, match: parser.OFPMatch) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(None, table_id=pipeline.TABLE_GRE,
                             command=ofp.OFPFC_DELETE_STRICT, priority=priority, cookie=cookie,
                             cookie_mask=0xFFFFFFFFFFFFFFFF, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY, match=match)


def delete_via_controller_flow(key: GreKey) -> parser.OFPFlowMod:
    return _delete_strict(Priority.GRE_VIA_CONTROLLER, key.cookie,
                          _gre_match(key.outside_ip, key.public_ip))


def delete_inward_flow(pair: GrePair) -> parser.OFPFlowMod:
    return _delete_strict(Priority.GRE_PAIR, pair.cookie,
                          _gre_match(pair.outside_ip, pair.public_ip))


def delete_pair_flows(pair: GrePair) -> parser.OFPFlowMod:
    return ofmsg.flow_delete(pair.cookie, 0xFFFFFFFFFFFFFFFF, table_id=pipeline.TABLE_GRE)


Key = tuple[IPv4Address, IPv4Address]


class PairTable:
    """The pairs of one gateway, by cookie ident and under their key (outside, public)."""

    def __init__(self) -> None:
        self._by_ident: dict[int, GrePair] = {}
        self.keys: dict[Key, GreKey] = {}
        self._next_ident = 1

    def __iter__(self) -> Iterator[GrePair]:
        return iter(list(self._by_ident.values()))

    def __len__(self) -> int:
        return len(self._by_ident)

    def get(self, inside: IPv4Address, outside: IPv4Address,
            public: IPv4Address) -> GrePair | None:
        key = self.keys.get((outside, public))
        for pair in key.pairs if key is not None else ():
            if pair.inside_ip == inside:
                return pair
        return None

    def by_cookie(self, cookie: int) -> GrePair | None:
        decoded = pipeline.decode_cookie(cookie)
        if decoded is None or decoded.kind != CookieKind.GRE_PAIR:
            return None
        return self._by_ident.get(decoded.ident)

    def sharing(self, key: Key) -> tuple[GrePair, ...]:
        """Pairs of every inside host that reaches the key's outside host through its
        public address."""
        state = self.keys.get(key)
        return state.pairs if state is not None else ()

    def key(self, key: Key) -> GreKey:
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = GreKey(self._ident(), *key)
        return state

    def indexed_calls(self) -> list[Call]:
        """Every call inward GRE can be matched to, over all keys."""
        found: list[Call] = []
        for key in self.keys.values():
            if isinstance(key.calls, dict):
                found.extend(key.calls.values())
            elif key.calls is not None:
                found.append(key.calls)
        return found

    def drop_if_unused(self, key: Key) -> None:
        """Forget a key with no pairs, users, calls or flows left."""
        state = self.keys.get(key)
        if state is not None and state.unused:
            del self.keys[key]

    def add(self, inside: IPv4Address, outside: IPv4Address, public: IPv4Address,
            to_inside: Hop, to_outside: Hop) -> GrePair:
        pair = GrePair(self._ident(), inside, outside, public, to_inside, to_outside)
        self._by_ident[pair.ident] = pair
        key = self.key((outside, public))
        key.pairs = (*key.pairs, pair)
        return pair

    def remove(self, pair: GrePair) -> None:
        """The pair goes; its key stays until the caller reconciles it (its flows)."""
        self._by_ident.pop(pair.ident, None)
        state = self.keys.get(pair.key)
        if state is not None and pair in state.pairs:
            state.pairs = tuple(p for p in state.pairs if p is not pair)

    def _ident(self) -> int:
        ident = self._next_ident
        self._next_ident = self._next_ident % pipeline.COOKIE_ID_MASK + 1
        return ident
