"""The ALG's OpenFlow pipeline: tables, priorities, cookies and static flows.

``flows/pipeline.yaml`` is the human-readable reference of what is built here;
``tests/unit/test_pipeline.py`` checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ryu_pptp_alg import ofmsg
from ryu_pptp_alg.codec.pptp import PPTP_PORT
from ryu_pptp_alg.config import GatewayConfig

TABLE_CLASSIFY = 0  # first table: sorts PPTP control, GRE and everything else
TABLE_GRE = 1  # per-call GRE address rewrites


class Priority:
    DEFAULT: Final = 0  # table miss, made explicit so it is counted
    PPTP_CONTROL: Final = 1000  # TCP/1723 to the gateway's MAC, either direction -> controller
    GRE: Final = 1000  # IP protocol 47 to the gateway's MAC -> GRE table
    ARP: Final = 2000  # ARP for one of the gateway's addresses -> controller
    GRE_VIA_CONTROLLER: Final = 2000  # GRE of a pending or shared pair -> controller
    GRE_PAIR: Final = 3000  # GRE address rewrites of one pair


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


class PipelineFlow(IntEnum):
    """Ids of the static flows, the low bits of their cookies."""

    CLASSIFY_DEFAULT = 1
    PPTP_TO_SERVER = 2
    PPTP_FROM_SERVER = 3
    GRE_TO_GRE_TABLE = 4
    GRE_UNMATCHED = 5
    ARP_INSIDE = 6
    ARP_PUBLIC = 7  # one flow per public address, all with this cookie


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


def static_flows(gateway: GatewayConfig) -> list[ofmsg.Message]:
    """The classification pipeline for one gateway switch."""
    to_controller = [ofmsg.apply_actions([ofmsg.output_controller()])]
    routed = {"eth_dst": gateway.gateway_mac, "eth_type": ofmsg.ETH_TYPE_IPV4}
    tcp = {**routed, "ip_proto": ofmsg.IP_PROTO_TCP}
    arp_flows = [
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.ARP,
                       ofmsg.match(eth_type=ofmsg.ETH_TYPE_ARP, arp_tpa=str(address)),
                       to_controller, _pipeline_cookie(flow))
        for flow, address in [(PipelineFlow.ARP_INSIDE, gateway.inside_address.ip),
                              *((PipelineFlow.ARP_PUBLIC, a) for a in gateway.public_addresses)]
    ]
    return [
        *arp_flows,
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.DEFAULT, ofmsg.match(),
                       [ofmsg.goto_table(gateway.next_table)],
                       _pipeline_cookie(PipelineFlow.CLASSIFY_DEFAULT)),
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.PPTP_CONTROL,
                       ofmsg.match(**tcp, tcp_dst=PPTP_PORT), to_controller,
                       _pipeline_cookie(PipelineFlow.PPTP_TO_SERVER)),
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.PPTP_CONTROL,
                       ofmsg.match(**tcp, tcp_src=PPTP_PORT), to_controller,
                       _pipeline_cookie(PipelineFlow.PPTP_FROM_SERVER)),
        ofmsg.flow_add(TABLE_CLASSIFY, Priority.GRE,
                       ofmsg.match(**routed, ip_proto=ofmsg.IP_PROTO_GRE),
                       [ofmsg.goto_table(TABLE_GRE)],
                       _pipeline_cookie(PipelineFlow.GRE_TO_GRE_TABLE)),
        # GRE of no known call: dropped, and counted by this flow's statistics.
        ofmsg.flow_add(TABLE_GRE, Priority.DEFAULT, ofmsg.match(), [],
                       _pipeline_cookie(PipelineFlow.GRE_UNMATCHED)),
    ]

