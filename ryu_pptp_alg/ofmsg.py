"""Small builders for the OpenFlow 1.3 messages the ALG emits.

Messages are Ryu parser objects made with ``datapath=None`` (as Faucet does):
plain data that the pure gateway logic can build, tests can inspect or feed to
the fake table, and the Ryu glue binds to a datapath just before sending.
Actions and matches are never changed once built, so the ones that recur in
every call's flows are made once and shared (Ryu's constructors are slow). The
flow-mods and packet-outs of every call are made without Ryu's constructors too:
the attributes Ryu's would set, copied from one it made (``_message``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
IP_PROTO_TCP = 6
IP_PROTO_GRE = 47

OFPP_CONTROLLER = ofp.OFPP_CONTROLLER
OFPP_IN_PORT = ofp.OFPP_IN_PORT
OFPTT_ALL = ofp.OFPTT_ALL

Action = Any
Instruction = Any
Message = Any


def match(**fields: Any) -> parser.OFPMatch:
    return parser.OFPMatch(**fields)


def apply_actions(actions: Sequence[Action]) -> Instruction:
    return parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))


def goto_table(table_id: int) -> Instruction:
    return parser.OFPInstructionGotoTable(table_id)


@lru_cache(maxsize=256)
def output(port: int) -> Action:
    return parser.OFPActionOutput(port, 0)


@lru_cache(maxsize=1)
def output_controller() -> Action:
    """Send the whole packet: the ALG needs every byte of the payload."""
    return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)


@lru_cache(maxsize=1024)
def set_field(**field: Any) -> Action:
    return parser.OFPActionSetField(**field)


@lru_cache(maxsize=1)
def dec_ip_ttl() -> Action:
    return parser.OFPActionDecNwTtl()


# Every attribute Ryu's constructors give these messages, from one made by Ryu.
_FLOW_MOD = dict(vars(parser.OFPFlowMod(None)))
_PACKET_OUT = dict(vars(parser.OFPPacketOut(None, in_port=ofp.OFPP_CONTROLLER)))


def _message(cls: type, attributes: dict[str, Any], fields: dict[str, Any]) -> Any:
    """What ``cls(None, **fields)`` makes, a few times faster."""
    msg: Any = object.__new__(cls)
    msg.__dict__.update(attributes)
    msg.__dict__.update(fields)
    return msg


def flow_add(
    table_id: int,
    priority: int,
    match_: parser.OFPMatch,
    instructions: Sequence[Instruction],
    cookie: int,
    idle_timeout: int = 0,
    hard_timeout: int = 0,
    send_flow_removed: bool = False,
) -> parser.OFPFlowMod:
    flags = ofp.OFPFF_SEND_FLOW_REM if send_flow_removed else 0
    return _message(parser.OFPFlowMod, _FLOW_MOD, {
        "cookie": cookie, "table_id": table_id, "command": ofp.OFPFC_ADD,
        "idle_timeout": idle_timeout, "hard_timeout": hard_timeout, "priority": priority,
        "buffer_id": ofp.OFP_NO_BUFFER, "flags": flags, "match": match_,
        "instructions": list(instructions)})


def flow_delete(cookie: int, cookie_mask: int, table_id: int = OFPTT_ALL) -> parser.OFPFlowMod:
    """Delete every flow whose cookie matches ``cookie`` under ``cookie_mask``."""
    return parser.OFPFlowMod(
        None,
        cookie=cookie,
        cookie_mask=cookie_mask,
        table_id=table_id,
        command=ofp.OFPFC_DELETE,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


def barrier() -> parser.OFPBarrierRequest:
    return parser.OFPBarrierRequest(None)


def packet_out(data: bytes, actions: Sequence[Action],
               in_port: int = ofp.OFPP_CONTROLLER) -> parser.OFPPacketOut:
    return _message(parser.OFPPacketOut, _PACKET_OUT, {
        "buffer_id": ofp.OFP_NO_BUFFER, "in_port": in_port, "actions": list(actions),
        "data": data})
