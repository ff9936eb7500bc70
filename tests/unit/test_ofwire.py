"""ofwire.encode is byte for byte Ryu's serialisation, and hands Ryu what it cannot pack."""

from __future__ import annotations

import copy
import struct
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ryu.ofproto import ofproto_parser
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import flowtable, ofmsg, ofwire, pairs, pipeline
from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.records import Hop, Pair
from tests.unit.test_config import VALID
from tests.unit.wire import assert_same_wire, ours, ryu_bytes


def pair() -> Pair:
    return Pair(7, IPv4Address("10.0.0.2"), IPv4Address("198.51.100.9"),
                   IPv4Address("203.0.113.5"), Hop("02:00:00:00:00:02", 1),
                   Hop("02:00:00:00:00:09", 3))


def alg_messages() -> list[Any]:
    gateway = config_from_dict(VALID).gateways[0]
    key = (IPv4Address("198.51.100.9"), IPv4Address("203.0.113.5"))
    return [*pipeline.static_flows(gateway),
            flowtable.delete_strict(flowtable.entry_of(pipeline.static_flows(gateway)[0])),
            pairs.outward_flow(pair(), "0e:00:00:00:00:01", 60),
            pairs.inward_flow(pair(), "0e:00:00:00:00:01", 60),
            pairs.via_controller_flow(key, 3), pairs.delete_via_controller_flow(key, 3),
            pairs.delete_inward_flow(pair()), pairs.delete_pair_flows(pair()),
            ofmsg.barrier(), ofmsg.packet_out(b"\x01" * 60, [ofmsg.output(2)]),
            ofmsg.packet_out(b"\x02" * 61, [ofmsg.output(ofp.OFPP_IN_PORT)], in_port=4)]


@pytest.mark.parametrize("msg", alg_messages(), ids=lambda m: type(m).__name__)
def test_every_message_the_alg_builds_encodes_like_ryu(msg: Any) -> None:
    assert_same_wire(msg)


def test_the_fast_encoder_packs_what_the_alg_builds() -> None:
    """Not a silent fallback: none of the ALG's messages reach Ryu's serialiser."""
    for msg in alg_messages():
        clone = copy.copy(msg)
        clone.xid = 1
        clone.datapath = None  # Ryu's serialiser would fail without one
        assert ofwire.encode(clone)


def old_api_flow() -> Any:
    match = parser.OFPMatch()
    match.set_in_port(3)  # Ryu's old match API: it serialises such a match only once
    return ofmsg.flow_add(0, 1, match, [], cookie=5)


def test_old_api_match_and_other_messages_go_to_ryu() -> None:
    assert ours(old_api_flow(), 9) == ryu_bytes(old_api_flow(), 9)
    stats = parser.OFPFlowStatsRequest(None, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                       0, 0, parser.OFPMatch())
    assert_same_wire(stats)
    clone = copy.copy(stats)
    clone.xid = 1
    with pytest.raises(AttributeError):  # Ryu's path: it needs a datapath
        ofwire.encode(clone)


def test_metered_flows_are_ours() -> None:
    meter = ofmsg.flow_add(0, 1, ofmsg.match(in_port=1), [
        parser.OFPInstructionMeter(3),
        ofmsg.apply_actions([ofmsg.output(ofp.OFPP_CONTROLLER)])], cookie=6)
    assert_same_wire(meter)
    clone = copy.copy(meter)
    clone.xid = 1
    ofwire.encode(clone)  # no datapath: Ryu's path would need one


def test_out_of_range_values_are_left_to_ryu() -> None:
    flow = ofmsg.flow_add(0, 1, ofmsg.match(in_port=2 ** 33), [], cookie=1)
    assert_same_wire(flow)


FIELDS = {
    "in_port": st.integers(0, 2 ** 32 - 1),
    "eth_type": st.sampled_from([0x0800, 0x0806, 0x86DD]),
    "ip_proto": st.integers(0, 255),
    "tcp_src": st.integers(0, 65535),
    "tcp_dst": st.integers(0, 65535),
    "ip_dscp": st.integers(0, 63),
    "metadata": st.integers(0, 2 ** 64 - 1) | st.tuples(st.integers(0, 2 ** 64 - 1),
                                                        st.integers(0, 2 ** 64 - 1)),
    "ipv4_src": st.ip_addresses(v=4).map(str)
    | st.tuples(st.ip_addresses(v=4).map(str), st.sampled_from(["255.255.255.0",
                                                               "255.0.0.0"])),
    "ipv4_dst": st.ip_addresses(v=4).map(str),
    "arp_tpa": st.ip_addresses(v=4).map(str),
    "eth_dst": st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":")),
    "eth_src": st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
    | st.tuples(st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":")),
                st.just("ff:ff:ff:00:00:00")),
    "vlan_vid": st.integers(0, 0x1FFF),
}
SET_FIELDS = ["eth_src", "eth_dst", "ipv4_src", "ipv4_dst", "tcp_src", "ip_dscp"]


@st.composite
def flow_mods(draw: st.DrawFn) -> Any:
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=6))
    # Ryu keeps OXM fields in type order when it builds a match from keywords.
    match = parser.OFPMatch(**{name: draw(FIELDS[name]) for name in names})
    actions: list[Any] = []
    for kind in draw(st.lists(st.sampled_from(["output", "set", "ttl"]), max_size=6)):
        if kind == "output":
            actions.append(parser.OFPActionOutput(draw(st.integers(0, 2 ** 32 - 1)),
                                                  draw(st.integers(0, 65535))))
        elif kind == "ttl":
            actions.append(parser.OFPActionDecNwTtl())
        else:
            name = draw(st.sampled_from(SET_FIELDS))
            value = draw(FIELDS[name])
            actions.append(parser.OFPActionSetField(
                **{name: value[0] if isinstance(value, tuple) else value}))
    instructions: list[Any] = []
    if actions or draw(st.booleans()):
        instructions.append(ofmsg.apply_actions(actions))
    if draw(st.booleans()):
        instructions.append(ofmsg.goto_table(draw(st.integers(0, 254))))
    return parser.OFPFlowMod(
        None, cookie=draw(st.integers(0, 2 ** 64 - 1)),
        cookie_mask=draw(st.integers(0, 2 ** 64 - 1)), table_id=draw(st.integers(0, 255)),
        command=draw(st.integers(0, 4)), idle_timeout=draw(st.integers(0, 65535)),
        hard_timeout=draw(st.integers(0, 65535)), priority=draw(st.integers(0, 65535)),
        buffer_id=draw(st.sampled_from([ofp.OFP_NO_BUFFER, 0, 77])),
        out_port=draw(st.sampled_from([ofp.OFPP_ANY, 3])),
        out_group=draw(st.sampled_from([ofp.OFPG_ANY, 9])),
        flags=draw(st.integers(0, 31)), match=match, instructions=instructions)


@given(flow_mods(), st.integers(0, 2 ** 32 - 1))
def test_any_flow_mod_encodes_like_ryu(msg: Any, xid: int) -> None:
    assert_same_wire(msg, xid)


@given(st.binary(max_size=1600), st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=4),
       st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1))
def test_any_packet_out_encodes_like_ryu(data: bytes, ports: list[int], in_port: int,
                                         xid: int) -> None:
    msg = ofmsg.packet_out(data, [ofmsg.output(port) for port in ports], in_port=in_port)
    assert_same_wire(msg, xid)


def test_packet_out_without_actions_keeps_its_data() -> None:
    """Ryu packs the header over the data when there are no actions; ours follows the
    spec (and the ALG never sends one: no actions means drop)."""
    wire = ours(ofmsg.packet_out(b"abc", []), 5)
    assert wire == bytes.fromhex("040d001b00000005" "ffffffff" "fffffffd" "0000" "000000000000") \
        + b"abc"


@pytest.mark.parametrize("value", ["10.0.0.1", "255.255.255.255", "0.0.0.0", "256.1.1.1",
                                   "010.0.0.1", " 10.0.0.1", "1.2.3", "0x1.2.3.4", "10.0.0.1 ",
                                   "1.2.3.4.5", ""])
def test_address_text_converts_like_ryu_or_is_left_to_it(value: str) -> None:
    flow = ofmsg.flow_add(0, 1, ofmsg.match(eth_type=0x0800, ipv4_dst="192.0.2.1"),
                          [ofmsg.apply_actions([ofmsg.set_field(ipv4_src=value)])], cookie=1)
    try:
        expected = ryu_bytes(flow, 3)
    except Exception as refused:  # Ryu refuses it: so must we (never wrong bytes)
        with pytest.raises(type(refused)):
            ours(flow, 3)
        return
    assert ours(flow, 3) == expected


@pytest.mark.parametrize("value", ["02:00:00:00:00:01", "FF:ff:00:00:00:0a", "2:0:0:0:0:1",
                                   "02-00-00-00-00-01", "02:00:00:00:00:0g", "0200:00:00:00:01",
                                   "02 00 00 00 00 01", "02:00:00:00:00:01:"])
def test_mac_text_converts_like_ryu_or_is_left_to_it(value: str) -> None:
    flow = ofmsg.flow_add(0, 1, ofmsg.match(in_port=1),
                          [ofmsg.apply_actions([ofmsg.set_field(eth_dst=value)])], cookie=1)
    try:
        expected = ryu_bytes(flow, 3)
    except Exception as refused:
        with pytest.raises(type(refused)):
            ours(flow, 3)
        return
    assert ours(flow, 3) == expected


# --- packet-ins ------------------------------------------------------------------------------


def packet_in_bytes(match: Any, data: bytes, *, buffer_id: int = ofp.OFP_NO_BUFFER,
                    total_len: int | None = None, reason: int = ofp.OFPR_ACTION,
                    table_id: int = 0, cookie: int = 0, xid: int = 1) -> bytes:
    """A packet-in as a switch sends it (Ryu can only parse them, not build them)."""
    buf = bytearray()
    match.serialize(buf, 0)  # padded to 8 bytes
    body = struct.pack("!IHBBQ", buffer_id, len(data) if total_len is None else total_len,
                       reason, table_id, cookie) + bytes(buf) + bytes(2) + data
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(body), xid) + body


def parsed(parse: Any, wire: bytes | bytearray) -> Any:
    version, msg_type, msg_len, xid = ofproto_parser.header(wire)
    return parse(None, version, msg_type, msg_len, xid, wire)


def same_message(ours_: Any, ryus: Any) -> None:
    assert type(ours_) is type(ryus)
    assert {k: v for k, v in vars(ours_).items() if k != "match"} \
        == {k: v for k, v in vars(ryus).items() if k != "match"}
    assert ours_.match._fields2 == ryus.match._fields2
    assert (ours_.match.type, ours_.match.length) == (ryus.match.type, ryus.match.length)
    assert str(ours_) == str(ryus)


def assert_parsed_or_refused_like_ryu(wire: bytes) -> None:
    """Where Ryu's parser refuses a message, ours refuses it the same way; elsewhere both
    make the same message."""
    try:
        expected = parsed(parser.OFPPacketIn.parser, wire)
    except Exception as refused:
        with pytest.raises(type(refused)):
            parsed(ofwire.parse_packet_in, wire)
        return
    same_message(parsed(ofwire.parse_packet_in, wire), expected)


PACKET_IN_FIELDS = {**FIELDS, "in_phy_port": st.integers(0, 2 ** 32 - 1),
                    "metadata": st.integers(0, 2 ** 64 - 1),
                    "tunnel_id": st.integers(0, 2 ** 64 - 1)}


@given(st.data(), st.binary(max_size=300), st.integers(0, 400),
       st.sampled_from([ofp.OFP_NO_BUFFER, 0, 99]), st.integers(0, 2), st.integers(0, 254),
       st.integers(0, 2 ** 64 - 1), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_any_packet_in_parses_like_ryu(data: st.DataObject, frame: bytes, total_len: int,
                                       buffer_id: int, reason: int, table_id: int, cookie: int,
                                       xid: int, as_bytearray: bool) -> None:
    """Total lengths below the frame's are trailing padding (cut); above, a truncated frame."""
    names = data.draw(st.lists(st.sampled_from(sorted(PACKET_IN_FIELDS)), unique=True,
                               max_size=4))
    match = parser.OFPMatch(**{n: data.draw(PACKET_IN_FIELDS[n]) for n in names})
    wire = packet_in_bytes(match, frame, buffer_id=buffer_id, total_len=total_len,
                           reason=reason, table_id=table_id, cookie=cookie, xid=xid)
    if as_bytearray:  # what Ryu's receive loop hands the parser
        wire = bytearray(wire)
    same_message(parsed(ofwire.parse_packet_in, wire),
                 parsed(parser.OFPPacketIn.parser, wire))


@given(st.integers(8, 60))
def test_a_truncated_packet_in_is_refused_like_ryu_does(length: int) -> None:
    """Ryu logs a message its parser refuses and drops the connection; ours refuses the
    same ones (never a message made of garbage)."""
    wire = packet_in_bytes(parser.OFPMatch(in_port=3, metadata=7), b"\x01" * 20)[:length]
    assert_parsed_or_refused_like_ryu(wire)


def test_packet_ins_with_the_same_match_share_one_parsed_match() -> None:
    first = parsed(ofwire.parse_packet_in, packet_in_bytes(parser.OFPMatch(in_port=9), b"a"))
    second = parsed(ofwire.parse_packet_in, packet_in_bytes(parser.OFPMatch(in_port=9), b"b"))
    other = parsed(ofwire.parse_packet_in, packet_in_bytes(parser.OFPMatch(in_port=8), b"a"))
    assert first.match is second.match
    assert other.match is not first.match
    assert (first.data, second.data, other.match["in_port"]) == (b"a", b"b", 8)


def test_the_match_cache_stays_bounded() -> None:
    for port in range(ofwire._CACHE_LIMIT + 50):
        parsed(ofwire.parse_packet_in, packet_in_bytes(parser.OFPMatch(metadata=port), b"x"))
    assert len(ofwire._matches) <= ofwire._CACHE_LIMIT


def test_ryu_parses_packet_ins_with_ours_once_installed() -> None:
    wire = packet_in_bytes(parser.OFPMatch(in_port=4), b"frame", cookie=77)
    try:
        ofwire.use_fast_packet_in_parser()
        msg = ofproto_parser.msg(None, *ofproto_parser.header(wire), wire)
        assert ofproto_v1_3_parser_table()[ofp.OFPT_PACKET_IN] is ofwire.parse_packet_in
    finally:
        ofwire.use_ryu_packet_in_parser()
    assert (msg.match["in_port"], msg.cookie, msg.data) == (4, 77, b"frame")
    assert ofproto_v1_3_parser_table()[ofp.OFPT_PACKET_IN] == parser.OFPPacketIn.parser


def ofproto_v1_3_parser_table() -> dict[int, Any]:
    return parser._MSG_PARSERS


@given(st.binary(min_size=16, max_size=80))
def test_any_packet_in_body_is_parsed_or_refused_like_ryu_does(body: bytes) -> None:
    wire = struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(body), 1) + body
    assert_parsed_or_refused_like_ryu(wire)


# --- messages made without Ryu's constructors ------------------------------------------------


@given(st.integers(0, 254), st.integers(0, 65535), st.integers(0, 2 ** 64 - 1),
       st.integers(0, 65535), st.integers(0, 65535), st.booleans())
def test_flow_add_makes_what_ryus_constructor_makes(table_id: int, priority: int, cookie: int,
                                                    idle: int, hard: int, removed: bool) -> None:
    match = ofmsg.match(in_port=3)
    instructions = [ofmsg.apply_actions([ofmsg.output(2)]), ofmsg.goto_table(1)]
    ours_ = ofmsg.flow_add(table_id, priority, match, instructions, cookie, idle, hard, removed)
    ryus = parser.OFPFlowMod(
        None, cookie=cookie, table_id=table_id, command=ofp.OFPFC_ADD, idle_timeout=idle,
        hard_timeout=hard, priority=priority, buffer_id=ofp.OFP_NO_BUFFER,
        flags=ofp.OFPFF_SEND_FLOW_REM if removed else 0, match=match,
        instructions=list(instructions))
    assert type(ours_) is type(ryus) and vars(ours_) == vars(ryus)
    assert ours_.instructions is not instructions  # its own list, as Ryu's gets


@given(st.binary(max_size=100), st.integers(0, 2 ** 32 - 1))
def test_packet_out_makes_what_ryus_constructor_makes(data: bytes, in_port: int) -> None:
    actions = [ofmsg.output(1), ofmsg.dec_ip_ttl()]
    ours_ = ofmsg.packet_out(data, actions, in_port=in_port)
    ryus = parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=list(actions), data=data)
    assert type(ours_) is type(ryus) and vars(ours_) == vars(ryus)
    first, second = ofmsg.packet_out(b"a", actions), ofmsg.packet_out(b"b", actions)
    assert first.__dict__ is not second.__dict__ and first.data == b"a"
