"""The ALG's OpenFlow pipeline: tables, priorities, cookies and static flows.

``flows/pipeline.yaml`` is the human-readable reference of what is built here;
``tests/unit/test_pipeline.py`` checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any, Final

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg
from ryu_pptp_alg.codec.pptp import PPTP_PORT
from ryu_pptp_alg.config import GatewayConfig, Rates
from ryu_pptp_alg.records import Conn

TABLE_CLASSIFY = 0  # first table: sorts PPTP control, GRE and everything else
TABLE_GRE = 1  # per-call GRE address rewrites


class Priority:
    DEFAULT: Final = 0  # table miss, made explicit so it is counted
    PPTP_CONTROL: Final = 1000  # TCP/1723 to the gateway's MAC, either direction -> controller
    PPTP_TRACKED: Final = 1100  # one answered control connection's segments -> controller
    BLOCKED_HOST: Final = 1050  # new connections of a host over its cap: dropped
    GRE: Final = 1000  # IP protocol 47 to the gateway's MAC -> GRE table
    ARP: Final = 2000  # ARP for one of the gateway's addresses -> controller
    GRE_VIA_CONTROLLER: Final = 2000  # GRE of a pending or shared pair -> controller
    GRE_PAIR: Final = 3000  # GRE address rewrites of one pair
    GRE_OUTWARD_UNMATCHED: Final = 1  # inside GRE no pair's flow takes -> controller


# Cookies: 16-bit application tag | 8-bit kind | 40-bit id.
# Deleting by (COOKIE_TAG, COOKIE_TAG_MASK) removes every flow of ours, and
# nothing that another application installed in the next table.
COOKIE_TAG = 0x5054 << 48  # "PT"
COOKIE_TAG_MASK = 0xFFFF << 48
COOKIE_KIND_SHIFT = 40
COOKIE_KIND_MASK = COOKIE_TAG_MASK | (0xFF << COOKIE_KIND_SHIFT)
COOKIE_ID_MASK = (1 << COOKIE_KIND_SHIFT) - 1


class CookieKind(IntEnum):
    PIPELINE = 0  # the static flows below; id says which
    GRE_PAIR = 1  # GRE rewrites of one (inside host, server, public address) pair
    GRE_KEY = 2  # server-to-client GRE of one (server, public address) via the controller
    CONNECTION = 3  # the two flows of one answered control connection (id: its record's)
    BLOCKED_HOST = 4  # a host's new control connections, dropped for a while (id: address)


class Meter(IntEnum):
    """Meters on controller-bound flows (switch profiles with meters), one per class of
    ``config.Rates``; the classes in ``PER_PORT`` have one per switch port (from PORTS on,
    ``port_meter``), so a host flooding SYNs or ARP on one port uses up its port's budget,
    not another's."""

    CONTROL = 2
    GRE = 3
    PORTS = 16


# Budget classes (``config.Rates`` fields) with a meter, or token bucket, per switch port.
PER_PORT: Final = ("new_connections", "arp", "unmatched_gre")


def port_meter(gateway: GatewayConfig, port: int, kind: str) -> int:
    """The meter of ``kind`` on ``port``: PORTS + the port's position among the gateway's
    ports (inside, then outside) times the per-port classes, + the class's position."""
    position = (*gateway.inside_ports, *gateway.outside_ports).index(port)
    return Meter.PORTS + position * len(PER_PORT) + PER_PORT.index(kind)


def meter_rates(gateway: GatewayConfig, rates: Rates) -> dict[int, int]:
    meters = {int(Meter.CONTROL): rates.control, int(Meter.GRE): rates.gre}
    for port in (*gateway.inside_ports, *gateway.outside_ports):
        for kind in PER_PORT:
            meters[port_meter(gateway, port, kind)] = getattr(rates, kind)
    return meters


def meter_mods(gateway: GatewayConfig, rates: Rates) -> list[Any]:
    """Each meter set to its rate: a modification where it exists (a reconnect keeps the
    meters and the flows using them), an addition where not; the switch refuses one of
    the two, harmlessly."""
    msgs = []
    for command in (ofp.OFPMC_MODIFY, ofp.OFPMC_ADD):
        for meter, rate in meter_rates(gateway, rates).items():
            msgs.append(parser.OFPMeterMod(
                None, command=command, flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST,
                meter_id=meter, bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=rate)]))
    return msgs


@lru_cache(maxsize=64)
def _to_controller(meter: int | None) -> tuple[Any, ...]:
    send = ofmsg.apply_actions([ofmsg.output_controller()])
    return (send,) if meter is None else (parser.OFPInstructionMeter(meter), send)


def to_controller(meter: int | None) -> list[Any]:
    """Instructions sending the whole packet to the controller, through ``meter``
    (made once per meter and shared: instructions are never changed once built)."""
    return list(_to_controller(meter))


def tracked_flows(conn: Conn, gateway_mac: str, metered: bool) -> list[Any]:
    """An answered connection's segments, both ways, to the controller on the CONTROL
    budget: a flood of new SYNs (and junk) at the generic flows cannot starve them."""
    instructions = to_controller(Meter.CONTROL if metered else None)
    cookie_ = cookie(CookieKind.CONNECTION, conn.id)
    return [ofmsg.flow_add(TABLE_CLASSIFY, Priority.PPTP_TRACKED,
                           _tcp_match(gateway_mac, *key), instructions, cookie_)
            for key in (conn.inside_key, conn.outside_key)]


def _tcp_match(gateway_mac: str, src: Any, sport: int, dst: Any,
               dport: int) -> parser.OFPMatch:
    # Fields already in OXM order and normal form: skips Ryu's slow normalisation.
    return parser.OFPMatch(_ordered_fields=[
        ("eth_dst", gateway_mac), ("eth_type", ofmsg.ETH_TYPE_IPV4),
        ("ip_proto", ofmsg.IP_PROTO_TCP), ("ipv4_src", str(src)), ("ipv4_dst", str(dst)),
        ("tcp_src", sport), ("tcp_dst", dport)])


def block_flow(host: Any, seconds: int) -> Any:
    """``host``'s SYNs (and junk) to port 1723 dropped in the switch; its tracked
    connections' flows rank above this one and go on. The hard timeout lifts the block
    should the controller not."""
    return ofmsg.flow_add(TABLE_CLASSIFY, Priority.BLOCKED_HOST, ofmsg.match(
        eth_type=ofmsg.ETH_TYPE_IPV4, ip_proto=ofmsg.IP_PROTO_TCP, ipv4_src=str(host),
        tcp_dst=PPTP_PORT), [], cookie(CookieKind.BLOCKED_HOST, int(host)),
        hard_timeout=seconds)


def delete_block_flow(host: Any) -> Any:
    return ofmsg.flow_delete(cookie(CookieKind.BLOCKED_HOST, int(host)), 0xFFFFFFFFFFFFFFFF,
                             table_id=TABLE_CLASSIFY)


def delete_tracked_flows(conn_id: int) -> Any:
    return ofmsg.flow_delete(cookie(CookieKind.CONNECTION, conn_id), 0xFFFFFFFFFFFFFFFF,
                             table_id=TABLE_CLASSIFY)


class PipelineFlow(IntEnum):
    """Ids of the static flows, the low bits of their cookies."""

    CLASSIFY_DEFAULT = 1
    PPTP_TO_SERVER = 2
    PPTP_FROM_SERVER = 3
    GRE_TO_GRE_TABLE = 4
    GRE_UNMATCHED = 5
    ARP_INSIDE = 6
    ARP_PUBLIC = 7  # one flow per public address, all with this cookie
    GRE_OUTWARD_UNMATCHED = 8  # one flow per inside port


def cookie(kind: CookieKind, ident: int) -> int:
    if not 0 <= ident <= COOKIE_ID_MASK:
        raise ValueError(f"cookie id {ident} does not fit in 40 bits")
    return COOKIE_TAG | (kind << COOKIE_KIND_SHIFT) | ident


@dataclass(frozen=True)
class DecodedCookie:
    kind: CookieKind
    ident: int


def decode_cookie(value: int) -> DecodedCookie | None:
    """Kind and id of one of our cookies; None for anybody else's."""
    if value & COOKIE_TAG_MASK != COOKIE_TAG:
        return None
    try:
        kind = CookieKind((value >> COOKIE_KIND_SHIFT) & 0xFF)
    except ValueError:
        return None
    return DecodedCookie(kind, value & COOKIE_ID_MASK)


def _pipeline_cookie(flow: PipelineFlow) -> int:
    return cookie(CookieKind.PIPELINE, flow)


def ours(cookie: int) -> bool:
    return cookie & COOKIE_TAG_MASK == COOKIE_TAG


def static_flows(gateway: GatewayConfig, metered: bool = False) -> list[ofmsg.Message]:
    """The classification pipeline for one gateway switch (``metered``: with the meters of
    ``meter_mods`` on the flows to the controller)."""
    routed = {"eth_dst": gateway.gateway_mac, "eth_type": ofmsg.ETH_TYPE_IPV4}
    tcp = {**routed, "ip_proto": ofmsg.IP_PROTO_TCP}
    arp_flows = []
    for flow, address, ports in [
            (PipelineFlow.ARP_INSIDE, gateway.inside_address.ip, gateway.inside_ports),
            *((PipelineFlow.ARP_PUBLIC, a, gateway.outside_ports)
              for a in gateway.public_addresses)]:
        for port in ports:  # from that side's ports only, each on its port's budget
            arp_flows.append(ofmsg.flow_add(
                TABLE_CLASSIFY, Priority.ARP,
                ofmsg.match(in_port=port, eth_type=ofmsg.ETH_TYPE_ARP, arp_tpa=str(address)),
                to_controller(port_meter(gateway, port, "arp") if metered else None),
                _pipeline_cookie(flow)))
    return [
        *arp_flows,
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.DEFAULT, ofmsg.match(),
                       [ofmsg.goto_table(gateway.next_table)],
                       _pipeline_cookie(PipelineFlow.CLASSIFY_DEFAULT)),
        *_control_flows(gateway, tcp, metered),
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.GRE,
                       ofmsg.match(**routed, ip_proto=ofmsg.IP_PROTO_GRE),
                       [ofmsg.goto_table(TABLE_GRE)],
                       _pipeline_cookie(PipelineFlow.GRE_TO_GRE_TABLE)),
        # GRE of no known call: dropped, and counted by this flow's statistics.
        ofmsg.flow_add(TABLE_GRE, Priority.DEFAULT, ofmsg.match(), [],
                       _pipeline_cookie(PipelineFlow.GRE_UNMATCHED)),
        # but an inside host's goes to the controller: a pair whose outward flow the
        # switch refused (a full table) is carried there, needing no flow of its own.
        *(ofmsg.flow_add(TABLE_GRE, Priority.GRE_OUTWARD_UNMATCHED, ofmsg.match(in_port=port),
                         to_controller(port_meter(gateway, port, "unmatched_gre")
                                       if metered else None),
                         _pipeline_cookie(PipelineFlow.GRE_OUTWARD_UNMATCHED))
          for port in gateway.inside_ports),
    ]


def _control_flows(gateway: GatewayConfig, tcp: dict[str, Any],
                   metered: bool) -> list[ofmsg.Message]:
    """TCP/1723 no tracked connection's flow takes: new connections (and junk). Metered,
    one flow per port and direction, each on its port's meter."""
    flows = []
    for flow, field in ((PipelineFlow.PPTP_TO_SERVER, "tcp_dst"),
                        (PipelineFlow.PPTP_FROM_SERVER, "tcp_src")):
        if not metered:
            flows.append(ofmsg.flow_add(TABLE_CLASSIFY, Priority.PPTP_CONTROL,
                                        ofmsg.match(**tcp, **{field: PPTP_PORT}),
                                        to_controller(None), _pipeline_cookie(flow)))
            continue
        for port in (*gateway.inside_ports, *gateway.outside_ports):
            flows.append(ofmsg.flow_add(
                TABLE_CLASSIFY, Priority.PPTP_CONTROL,
                ofmsg.match(in_port=port, **tcp, **{field: PPTP_PORT}),
                to_controller(port_meter(gateway, port, "new_connections")),
                _pipeline_cookie(flow)))
    return flows
