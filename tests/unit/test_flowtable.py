"""The switch's flows against the wanted ones: what a warm reconnect keeps, adds, deletes."""

from __future__ import annotations

from ipaddress import IPv4Address

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import flowtable, pairs, pipeline
from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.flowtable import diff, entry_of, instructions_key
from ryu_pptp_alg.records import Hop, Pair
from tests.unit.test_config import VALID

MAC = "0e:00:00:00:00:01"


def pair(port: int = 1, mac: str = "02:00:00:00:00:02") -> Pair:
    return Pair(7, IPv4Address("10.0.0.2"), IPv4Address("198.51.100.9"),
                IPv4Address("203.0.113.5"), Hop(mac, port), Hop("02:00:00:00:00:09", 3))


def reparsed(instructions: list) -> list:
    """As the switch reports them: encoded, then parsed by Ryu."""
    out = []
    for instruction in instructions:
        buf = bytearray()
        instruction.serialize(buf, 0)
        cls = type(instruction)
        out.append(cls.parser(bytes(buf), 0))
    return out


def test_built_and_parsed_instructions_compare_equal_and_differences_show():
    flows = [*pipeline.static_flows(config_from_dict(VALID).gateways[0]),
             pairs.outward_flow(pair(), MAC, 60), pairs.inward_flow(pair(), MAC, 60),
             pairs.via_controller_flow(pair().key, 9)]
    for flow in flows:
        assert instructions_key(reparsed(flow.instructions)) == instructions_key(
            flow.instructions)
    moved = pairs.inward_flow(pair(port=2), MAC, 60)
    other_mac = pairs.inward_flow(pair(mac="02:00:00:00:00:03"), MAC, 60)
    reference = instructions_key(pairs.inward_flow(pair(), MAC, 60).instructions)
    assert instructions_key(moved.instructions) != reference
    assert instructions_key(other_mac.instructions) != reference


def test_diff_keeps_what_is_right_replaces_what_differs_deletes_what_nobody_wants():
    right = pairs.outward_flow(pair(), MAC, 60)
    wrong_hop = pairs.inward_flow(pair(port=2), MAC, 60)  # in the switch: an old next hop
    wanted_inward = pairs.inward_flow(pair(), MAC, 60)
    stale = pairs.via_controller_flow((IPv4Address("192.0.2.1"), pair().public_ip), 5)
    missing = pairs.via_controller_flow(pair().key, 9)
    result = diff([right, wanted_inward, missing],
                  [entry_of(right), entry_of(wrong_hop), entry_of(stale)])
    assert result.kept == 1
    assert result.adds == [wanted_inward, missing]  # the add replaces the wrong one in place
    (delete,) = result.deletes
    assert (delete.command, delete.cookie, delete.cookie_mask, delete.priority) == (
        ofp.OFPFC_DELETE_STRICT, stale.cookie, 0xFFFFFFFFFFFFFFFF, stale.priority)
    assert flowtable.match_items(delete.match) == flowtable.match_items(stale.match)


def test_a_flow_wanted_with_another_cookie_is_replaced_and_the_old_one_deleted():
    wanted = pairs.via_controller_flow(pair().key, 9)
    old = parser.OFPFlowMod(None, table_id=wanted.table_id, priority=wanted.priority,
                            cookie=pipeline.cookie(pipeline.CookieKind.GRE_KEY, 1),
                            match=wanted.match, instructions=wanted.instructions)
    result = diff([wanted], [entry_of(old)])
    assert result.adds == [wanted] and len(result.deletes) == 1 and result.kept == 0
