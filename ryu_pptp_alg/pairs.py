"""GRE paths: the GRE table's flows, fast or through the controller.

OpenFlow cannot match the GRE key, only addresses. A *pair* is one inside host
talking GRE to one outside host through one public address: an inside client
and its server (outbound), or an inside server reached through a port forward
and an outside client (inbound). Its flows are shared by the calls that use it.
Outward GRE is always unambiguous (inside, outside). Inward GRE is identified by
its *key* (outside host, public address) alone, so a pair is *fast* (both
directions in the switch) only while it is the key's only pair and none of its
calls has a translated call ID (the switch cannot rewrite the GRE key back).
Otherwise the key's GRE goes to the controller, which picks the call by the
key's call ID.

``GrePaths`` owns the GRE table: it turns call events into flow changes, and says
which flows the records want in the switch (``wanted``), for a warm reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Address
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg, pipeline
from ryu_pptp_alg import records as rec
from ryu_pptp_alg.pipeline import CookieKind, Priority
from ryu_pptp_alg.records import Call, CallState, Conn, Hop, Pair, Path
from ryu_pptp_alg.state import VIA_CONTROLLER, GatewayState, Key

__all__ = ["GrePaths", "Hop", "Key"]


@lru_cache(maxsize=256)  # recent keys only: a match object is large
def _gre_match(src: IPv4Address, dst: IPv4Address) -> parser.OFPMatch:
    # Fields already in OXM order and normal form: skips Ryu's slow normalisation. Shared
    # by a key's add and delete flow-mods (a match is never changed once built).
    return parser.OFPMatch(_ordered_fields=[
        ("eth_type", ofmsg.ETH_TYPE_IPV4), ("ip_proto", ofmsg.IP_PROTO_GRE),
        ("ipv4_src", str(src)), ("ipv4_dst", str(dst))])


def pair_cookie(pair: Pair) -> int:
    return pipeline.cookie(CookieKind.GRE_PAIR, pair.id)


def _rewrite_flow(pair: Pair, match: parser.OFPMatch, hop: Hop, gateway_mac: str,
                  idle_timeout: int, **address: str) -> parser.OFPFlowMod:
    """Route a pair's GRE like a router (MACs, TTL) with one address rewritten."""
    actions = [ofmsg.set_field(eth_src=gateway_mac), ofmsg.set_field(eth_dst=hop.mac),
               ofmsg.set_field(**address), ofmsg.dec_ip_ttl(), ofmsg.output(hop.port)]
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_PAIR, match,
                          [ofmsg.apply_actions(actions)], pair_cookie(pair),
                          idle_timeout=idle_timeout, send_flow_removed=True)


def outward_flow(pair: Pair, gateway_mac: str, idle_timeout: int) -> parser.OFPFlowMod:
    """Inside host to outside host: the source becomes the public address."""
    return _rewrite_flow(pair, _gre_match(pair.inside_ip, pair.outside_ip), pair.to_outside,
                         gateway_mac, idle_timeout, ipv4_src=str(pair.public_ip))


def inward_flow(pair: Pair, gateway_mac: str, idle_timeout: int) -> parser.OFPFlowMod:
    """Outside host to the public address: the destination becomes the inside host."""
    return _rewrite_flow(pair, _gre_match(pair.outside_ip, pair.public_ip), pair.to_inside,
                         gateway_mac, idle_timeout, ipv4_dst=str(pair.inside_ip))


def via_controller_flow(key: Key, cookie: int, metered: bool = False) -> parser.OFPFlowMod:
    """Outside host to public address, via the controller (pending or shared key)."""
    return ofmsg.flow_add(pipeline.TABLE_GRE, Priority.GRE_VIA_CONTROLLER, _gre_match(*key),
                          pipeline.to_controller(pipeline.Meter.GRE if metered else None),
                          cookie)


def _delete_strict(priority: int, cookie: int, match: parser.OFPMatch) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(None, table_id=pipeline.TABLE_GRE,
                             command=ofp.OFPFC_DELETE_STRICT, priority=priority, cookie=cookie,
                             cookie_mask=0xFFFFFFFFFFFFFFFF, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY, match=match)


def delete_via_controller_flow(key: Key, cookie: int) -> parser.OFPFlowMod:
    return _delete_strict(Priority.GRE_VIA_CONTROLLER, cookie, _gre_match(*key))


def delete_inward_flow(pair: Pair) -> parser.OFPFlowMod:
    return _delete_strict(Priority.GRE_PAIR, pair_cookie(pair),
                          _gre_match(pair.outside_ip, pair.public_ip))


def delete_pair_flows(pair: Pair) -> parser.OFPFlowMod:
    return ofmsg.flow_delete(pair_cookie(pair), 0xFFFFFFFFFFFFFFFF,
                             table_id=pipeline.TABLE_GRE)


class GrePaths:
    """The GRE table of one gateway: pairs, keys, fast and slow paths."""

    def __init__(self, state: GatewayState, gateway_mac: str, idle_timeout: int,
                 public_addresses: tuple[IPv4Address, ...],
                 xid: Callable[[], int] | None = None, metered: bool = False) -> None:
        self.state = state
        self.metered = metered
        # Flow additions sent, by xid, so that a refusal from the switch finds its flow
        # (cookie and match); the latest only: a switch answers at once.
        self._xid = xid
        self.sent: dict[int, tuple[int, str]] = {}  # xid -> (cookie, the match's source)
        self.mac = gateway_mac
        self.idle_timeout = idle_timeout
        # A key's cookie is derived from its addresses: (public address's position, outside
        # host), so no record is needed to find it again after a restart.
        self._public_index = {a: i for i, a in enumerate(public_addresses)}

    def key_cookie(self, key: Key) -> int:
        outside, public = key
        index = self._public_index.get(public, 0xFF) & 0xFF
        return pipeline.cookie(CookieKind.GRE_KEY, (index << 32) | int(outside))

    # --- call events -----------------------------------------------------------------------

    def call_requested(self, conn: Conn, call: Call, to_inside: Hop | None,
                       to_outside: Hop | None) -> list[Any] | None:
        """The call joins its pair (made if new); inward GRE of a new pair goes to the
        controller until the call is established. None: a next hop is unknown."""
        state = self.state
        inside_ip, outside_ip = conn.inside[0], conn.outside[0]
        pair = state.pair_at(inside_ip, (outside_ip, conn.public_ip))
        if pair is None:
            if to_inside is None or to_outside is None:
                return None
            pair = Pair(state.new_pair_id(pipeline.COOKIE_ID_MASK), inside_ip, outside_ip,
                        conn.public_ip, to_inside, to_outside)
            state.add_pair(pair)
        state.link_pair(call, pair)
        return self.reconcile(pair.key)

    def outward_conflict(self, conn: Conn) -> Pair | None:
        """Another public address's pair between the same two hosts: outward GRE is told
        apart by (inside, outside) alone, so the two cannot both be in the switch."""
        for pair in self.state.idx.host_pairs.get((conn.inside[0], conn.outside[0]), ()):
            if pair.public_ip != conn.public_ip:
                return pair
        return None

    def call_established(self, call: Call) -> list[Any]:
        pair = self.state.pair_of(call)
        if pair is None:
            return []
        msgs = []
        if not pair.installed:
            pair.installed = True
            self.state.touch(rec.PAIR, pair.id)
            msgs.append(self.track(outward_flow(pair, self.mac, self.idle_timeout)))
        return msgs + self.reconcile(pair.key)

    def call_closed(self, conn: Conn, call: Call) -> list[Any]:
        """The call's records go; so do its pair's flows once no call uses them."""
        state = self.state
        pair = state.pair_of(call)
        state.remove_call(call)
        if pair is None:
            return []
        msgs = []
        if pair.id not in state.idx.pair_calls:
            state.remove_pair(pair)
            msgs.append(delete_pair_flows(pair))
        return msgs + self.reconcile(pair.key)

    # --- the key's inward flows ------------------------------------------------------------

    def wanted(self, key: Key) -> int | None:
        """The inward flows the key's pairs call for: the fast pair's id, VIA_CONTROLLER,
        or None (no pairs)."""
        pairs = self.state.idx.key_pairs.get(key)
        if not pairs:
            return None
        if len(pairs) == 1:
            pair = pairs[0]
            if pair.installed and not pair.refused & rec.REFUSED_INWARD and not any(
                    call.translated for call in self.state.idx.pair_calls.get(pair.id, ())):
                return pair.id
        if all(p.refused & rec.REFUSED_CONTROLLER for p in pairs):
            return None  # the switch has no room for the key's flow to the controller
        return VIA_CONTROLLER

    def reconcile(self, key: Key) -> list[Any]:
        """Make the key's inward flows fit its pairs; adds before deletes, so no GRE
        falls through to the drop flow while paths change."""
        state = self.state
        have = state.idx.key_flows.get(key)
        want = self.wanted(key)
        if want == have:
            return []
        adds: list[Any] = []
        deletes: list[Any] = []
        cookie = self.key_cookie(key)
        if want == VIA_CONTROLLER:
            adds.append(self.track(via_controller_flow(key, cookie, self.metered)))
        elif want is not None:
            adds.append(self.track(inward_flow(state.pairs[want], self.mac,
                                               self.idle_timeout)))
        if have == VIA_CONTROLLER:
            deletes.append(delete_via_controller_flow(key, cookie))
        elif have is not None:
            previous = state.pairs.get(have)
            if previous is not None:  # a removed pair's flows went with its cookie
                deletes.append(delete_inward_flow(previous))
        state.set_key_flows(key, want)
        return adds + deletes

    def wanted_all(self) -> dict[Key, int]:
        """Every key's wanted inward flows: what ``key_flows`` holds when all is in step."""
        wanted = {}
        for key in self.state.idx.key_pairs:
            flows = self.wanted(key)
            if flows is not None:
                wanted[key] = flows
        return wanted

    def flows(self) -> list[parser.OFPFlowMod]:
        """Every GRE flow the records call for (the drop flow aside): what a warm reconnect
        compares the switch's table with."""
        state = self.state
        wanted = []
        for pair in state.pairs.values():
            if pair.installed and not pair.refused & rec.REFUSED_OUTWARD:
                wanted.append(outward_flow(pair, self.mac, self.idle_timeout))
        for key, flows in state.idx.key_flows.items():
            if flows == VIA_CONTROLLER:
                wanted.append(via_controller_flow(key, self.key_cookie(key), self.metered))
            else:
                wanted.append(inward_flow(state.pairs[flows], self.mac, self.idle_timeout))
        return wanted

    # --- reading -----------------------------------------------------------------------------

    def path(self, call: Call) -> Path:
        """Fast: both directions in the switch. Slow: the controller carries one or both
        (outward GRE no flow takes goes to it, so a refused outward flow costs no path).
        Refused: inward GRE has no way in (the switch refused every flow it could take)."""
        if call.pair is None:  # no GRE flows at all: it carries nothing
            return Path.REFUSED
        pair = self.state.pairs[call.pair]
        have = self.state.idx.key_flows.get(pair.key)
        if have is None and pair.refused & (rec.REFUSED_INWARD | rec.REFUSED_CONTROLLER):
            return Path.REFUSED
        if call.state == CallState.ESTABLISHED and have == pair.id \
                and not pair.refused & rec.REFUSED_OUTWARD:
            return Path.FAST
        return Path.SLOW

    def track(self, msg: Any) -> Any:
        """Give a flow addition an xid of ours and remember it, for refusals."""
        if self._xid is not None:
            msg.xid = xid = self._xid()
            # The source address tells a pair's two rewrites apart; the match object itself
            # is large and must not be kept alive here.
            self.sent[xid] = (msg.cookie, str(msg.match.get("ipv4_src", "")))
            if len(self.sent) > 4096:
                del self.sent[next(iter(self.sent))]
        return msg

    def refused_xid(self, xid: int) -> list[Any] | None:
        """The switch refused the message ``xid``: None if it was no flow of ours."""
        sent = self.sent.pop(xid, None)
        if sent is None:
            return None
        cookie, source = sent
        return self.refused(cookie, (("ipv4_src", source),))

    def refused(self, cookie: int, match: tuple[tuple[str, Any], ...]) -> list[Any]:
        """The switch refused to add a flow of ours: the pairs it leaves without a path
        are marked so (the session table says "refused"); a pair whose inward rewrite was
        refused falls back to the controller path. Returns the flow changes that follow."""
        decoded = pipeline.decode_cookie(cookie)
        if decoded is None:
            return []
        state = self.state
        affected: list[Pair] = []
        if decoded.kind == CookieKind.GRE_PAIR:
            pair = state.pairs.get(decoded.ident)
            if pair is not None:
                affected = [pair]
                outward = ("ipv4_src", str(pair.inside_ip)) in match
                flag = rec.REFUSED_OUTWARD if outward else rec.REFUSED_INWARD
        elif decoded.kind == CookieKind.GRE_KEY:
            key = self._key_of(decoded.ident)
            affected = list(state.idx.key_pairs.get(key, ())) if key is not None else []
            flag = rec.REFUSED_CONTROLLER
        msgs: list[Any] = []
        for pair in affected:
            if pair.refused & flag:
                continue
            pair.refused |= flag
            state.touch(rec.PAIR, pair.id)
            have = state.idx.key_flows.get(pair.key)
            if (flag == rec.REFUSED_CONTROLLER and have == VIA_CONTROLLER) \
                    or (flag == rec.REFUSED_INWARD and have == pair.id):
                state.set_key_flows(pair.key, None)  # not in the switch after all
            msgs.extend(self.reconcile(pair.key))
        return msgs

    def calls_near(self, xid: int) -> list[Call]:
        """The calls whose path a refusal of message ``xid`` may change: those of every
        pair on its key (``refused`` reconciles the key)."""
        sent = self.sent.get(xid)
        decoded = None if sent is None else pipeline.decode_cookie(sent[0])
        key: Key | None = None
        if decoded is not None and decoded.kind == CookieKind.GRE_PAIR:
            pair = self.state.pairs.get(decoded.ident)
            key = None if pair is None else pair.key
        elif decoded is not None and decoded.kind == CookieKind.GRE_KEY:
            key = self._key_of(decoded.ident)
        idx = self.state.idx
        return [] if key is None else [call for pair in idx.key_pairs.get(key, ())
                                       for call in idx.pair_calls.get(pair.id, ())]

    def _key_of(self, ident: int) -> Key | None:
        index, outside = ident >> 32, ident & 0xFFFFFFFF
        for public, position in self._public_index.items():
            if position & 0xFF == index:
                return (IPv4Address(outside), public)
        return None

    def pair_by_cookie(self, cookie: int) -> Pair | None:
        decoded = pipeline.decode_cookie(cookie)
        if decoded is None or decoded.kind != CookieKind.GRE_PAIR:
            return None
        return self.state.pairs.get(decoded.ident)
