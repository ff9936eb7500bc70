"""Behavioural tests of the fake OpenFlow 1.3 pipeline in tests/fakeoftable.py."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from tests.fakeoftable import FakeFlow, FakeOFTable

GRE = {
    "in_port": 1,
    "eth_src": "00:00:00:00:00:01",
    "eth_dst": "00:00:00:00:00:fe",
    "eth_type": 0x0800,
    "ipv4_src": "10.0.0.2",
    "ipv4_dst": "198.51.100.1",
    "ip_proto": 47,
    "ip_ttl": 64,
    "len": 100,
}


def apply_actions(*actions):
    return parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))


def write_actions(*actions):
    return parser.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, list(actions))


def output(port):
    return parser.OFPActionOutput(port)


def flowmod(table_id=0, priority=100, cookie=0, instructions=(), **match):
    return parser.OFPFlowMod(
        None,
        table_id=table_id,
        priority=priority,
        cookie=cookie,
        match=parser.OFPMatch(**match),
        instructions=list(instructions),
    )


def delete(strict=False, table_id=ofp.OFPTT_ALL, priority=0, cookie=0, cookie_mask=0, **match):
    return parser.OFPFlowMod(
        None,
        table_id=table_id,
        command=ofp.OFPFC_DELETE_STRICT if strict else ofp.OFPFC_DELETE,
        priority=priority,
        cookie=cookie,
        cookie_mask=cookie_mask,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**match),
    )


def ports(outputs):
    return [out["out_port"] for out in outputs]


@pytest.fixture
def table():
    return FakeOFTable()


# ------------------------------------------------------------------ lookup


def test_highest_priority_wins_regardless_of_install_order(table):
    table.apply(
        [
            flowmod(priority=200, instructions=[apply_actions(output(2))], eth_type=0x800),
            flowmod(priority=300, instructions=[apply_actions(output(3))], ip_proto=47),
            flowmod(priority=100, instructions=[apply_actions(output(4))]),
        ]
    )
    assert ports(table.lookup(GRE)) == [3]
    assert ports(table.lookup({**GRE, "ip_proto": 6})) == [2]
    assert ports(table.lookup({**GRE, "eth_type": 0x806, "ip_proto": 6})) == [4]


def test_equal_priority_overlap_first_installed_wins(table):
    table.apply(
        [
            flowmod(instructions=[apply_actions(output(2))], ip_proto=47),
            flowmod(instructions=[apply_actions(output(3))], eth_type=0x800),
        ]
    )
    assert ports(table.lookup(GRE)) == [2]
    # Re-adding the first flow keeps its position.
    table.apply([flowmod(instructions=[apply_actions(output(5))], ip_proto=47)])
    assert ports(table.lookup(GRE)) == [5]


def test_table_miss_drops(table):
    table.apply([flowmod(instructions=[apply_actions(output(2))], ipv4_src="10.0.0.3")])
    assert table.lookup(GRE) == []
    assert table.flows()[0].packet_count == 0


def test_empty_table_drops(table):
    assert table.lookup(GRE) == []


def test_field_missing_from_packet_does_not_match(table):
    table.apply([flowmod(instructions=[apply_actions(output(2))], tcp_dst=1723)])
    assert table.lookup(GRE) == []
    assert ports(table.lookup({**GRE, "ip_proto": 6, "tcp_dst": 1723})) == [2]


@pytest.mark.parametrize(
    ("mask_form", "inside", "outside"),
    [
        (("10.0.0.0", "255.255.255.0"), "10.0.0.200", "10.0.1.2"),
        ("10.0.0.0/24", "10.0.0.7", "11.0.0.7"),
        (("10.0.0.0", "255.0.0.0"), "10.200.3.4", "192.168.0.1"),
    ],
)
def test_masked_ipv4_match(table, mask_form, inside, outside):
    table.apply([flowmod(instructions=[apply_actions(output(2))], ipv4_dst=mask_form)])
    assert ports(table.lookup({**GRE, "ipv4_dst": inside})) == [2]
    assert table.lookup({**GRE, "ipv4_dst": outside}) == []


@given(
    prefix=st.integers(min_value=0, max_value=32),
    net=st.integers(min_value=0, max_value=2**32 - 1),
    addr=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_masked_ipv4_match_agrees_with_ipaddress(prefix, net, addr):
    network = ipaddress.IPv4Network((net, prefix), strict=False)
    table = FakeOFTable()
    table.apply(
        [
            flowmod(
                instructions=[apply_actions(output(2))],
                ipv4_dst=(str(network.network_address), str(network.netmask)),
            )
        ]
    )
    matched = table.lookup({**GRE, "ipv4_dst": str(ipaddress.IPv4Address(addr))}) != []
    assert matched == (ipaddress.IPv4Address(addr) in network)


def test_masked_eth_dst_and_mac_case_normalised(table):
    table.apply(
        [
            flowmod(
                instructions=[apply_actions(output(2))],
                eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00"),
            ),
            flowmod(
                priority=50, instructions=[apply_actions(output(3))], eth_src="AA:BB:CC:00:00:01"
            ),
        ]
    )
    assert ports(table.lookup({**GRE, "eth_dst": "01:80:C2:00:00:0E"})) == [2]
    out = table.lookup({**GRE, "eth_src": "aa:bb:cc:00:00:01"})
    assert ports(out) == [3]
    assert out[0]["eth_src"] == "aa:bb:cc:00:00:01"
    assert table.lookup({**GRE, "eth_src": "aa:bb:cc:00:00:02"}) == []


def test_ip_strings_normalised(table):
    table.apply([flowmod(instructions=[apply_actions(output(2))], arp_tpa="10.0.0.1")])
    pkt = {"in_port": 1, "eth_type": 0x806, "arp_op": 1, "arp_tpa": "010.000.0.1"}
    assert ports(table.lookup(pkt)) == [2]


def test_goto_chain_and_counters(table):
    table.apply(
        [
            flowmod(table_id=0, instructions=[parser.OFPInstructionGotoTable(2)], in_port=1),
            flowmod(
                table_id=2,
                instructions=[apply_actions(output(7)), parser.OFPInstructionGotoTable(5)],
                ip_proto=47,
            ),
            flowmod(table_id=5, instructions=[apply_actions(output(8))]),
        ]
    )
    assert ports(table.lookup(GRE)) == [7, 8]
    assert [(f.table_id, f.packet_count, f.byte_count) for f in table.flows()] == [
        (0, 1, 100),
        (2, 1, 100),
        (5, 1, 100),
    ]
    # Miss in the middle table: nothing from table 5, table 0 still counted.
    assert table.lookup({**GRE, "ip_proto": 6}) == []
    assert [f.packet_count for f in table.flows()] == [2, 1, 1]


def test_goto_backwards_is_rejected(table):
    with pytest.raises(ValueError, match="goto_table"):
        table.apply([flowmod(table_id=3, instructions=[parser.OFPInstructionGotoTable(3)])])
    with pytest.raises(ValueError, match="goto_table"):
        table.apply([flowmod(table_id=3, instructions=[parser.OFPInstructionGotoTable(1)])])
    with pytest.raises(ValueError):
        table.apply([flowmod(table_id=3, instructions=[parser.OFPInstructionGotoTable(8)])])
    assert table.flow_count() == 0


def test_set_field_dec_ttl_output(table):
    table.apply(
        [
            flowmod(
                instructions=[
                    apply_actions(
                        output(9),
                        parser.OFPActionSetField(ipv4_src="203.0.113.1"),
                        parser.OFPActionSetField(eth_dst="0E:00:00:00:00:02"),
                        parser.OFPActionDecNwTtl(),
                        output(3),
                    )
                ],
                eth_type=0x800,
                ip_proto=47,
                ipv4_src="10.0.0.2",
            )
        ]
    )
    before, after = table.lookup(GRE)
    assert before == {**GRE, "out_port": 9}
    assert after == {
        **GRE,
        "ipv4_src": "203.0.113.1",
        "eth_dst": "0e:00:00:00:00:02",
        "ip_ttl": 63,
        "out_port": 3,
    }


def test_apply_action_changes_persist_to_next_table(table):
    table.apply(
        [
            flowmod(
                instructions=[
                    apply_actions(parser.OFPActionSetField(ipv4_dst="10.0.0.9")),
                    parser.OFPInstructionGotoTable(1),
                ]
            ),
            flowmod(table_id=1, instructions=[apply_actions(output(4))], ipv4_dst="10.0.0.9"),
        ]
    )
    (out,) = table.lookup(GRE)
    assert out["ipv4_dst"] == "10.0.0.9"
    assert out["out_port"] == 4


def test_ttl_one_is_dropped_by_dec_nw_ttl(table):
    table.apply(
        [
            flowmod(
                instructions=[apply_actions(output(5), parser.OFPActionDecNwTtl(), output(3))],
            )
        ]
    )
    assert ports(table.lookup({**GRE, "ip_ttl": 1})) == [5]
    assert ports(table.lookup({**GRE, "ip_ttl": 2})) == [5, 3]
    assert table.lookup({**GRE, "ip_ttl": 2})[1]["ip_ttl"] == 1


def test_ttl_expiry_stops_the_pipeline(table):
    table.apply(
        [
            flowmod(
                instructions=[
                    apply_actions(parser.OFPActionDecNwTtl()),
                    parser.OFPInstructionGotoTable(1),
                ]
            ),
            flowmod(table_id=1, instructions=[apply_actions(output(3))]),
        ]
    )
    assert table.lookup({**GRE, "ip_ttl": 1}) == []
    assert table.flows(1)[0].packet_count == 0


def test_controller_output_carries_cookie_and_table_id(table):
    table.apply(
        [
            flowmod(cookie=0xA1, instructions=[parser.OFPInstructionGotoTable(3)]),
            flowmod(
                table_id=3,
                cookie=0xC0FFEE,
                instructions=[apply_actions(output(ofp.OFPP_CONTROLLER), output(2))],
                tcp_dst=1723,
            ),
        ]
    )
    pkt = {**GRE, "ip_proto": 6, "tcp_src": 40000, "tcp_dst": 1723}
    to_ctl, to_port = table.lookup(pkt)
    assert to_ctl == {**pkt, "out_port": ofp.OFPP_CONTROLLER, "table_id": 3, "cookie": 0xC0FFEE}
    assert to_port == {**pkt, "out_port": 2}


def test_in_port_output_resolves_and_plain_in_port_is_dropped(table):
    table.apply(
        [
            flowmod(instructions=[apply_actions(output(ofp.OFPP_IN_PORT))], ip_proto=47),
            flowmod(instructions=[apply_actions(output(1), output(2))], ip_proto=6),
        ]
    )
    assert ports(table.lookup(GRE)) == [1]
    assert ports(table.lookup({**GRE, "ip_proto": 6})) == [2]


def test_write_actions_run_at_end_in_action_set_order(table):
    table.apply(
        [
            flowmod(
                instructions=[
                    write_actions(
                        output(4),
                        parser.OFPActionSetField(ipv4_src="203.0.113.1"),
                        parser.OFPActionDecNwTtl(),
                    ),
                    parser.OFPInstructionGotoTable(1),
                ]
            ),
            flowmod(
                table_id=1,
                cookie=7,
                instructions=[
                    apply_actions(output(2)),
                    write_actions(output(ofp.OFPP_CONTROLLER)),  # replaces output:4
                ],
            ),
        ]
    )
    first, last = table.lookup(GRE)
    assert first == {**GRE, "out_port": 2}  # apply-actions run before the action set
    assert last == {
        **GRE,
        "ipv4_src": "203.0.113.1",
        "ip_ttl": 63,
        "out_port": ofp.OFPP_CONTROLLER,
        "table_id": 1,
        "cookie": 7,
    }


def test_clear_actions_empties_action_set(table):
    table.apply(
        [
            flowmod(instructions=[write_actions(output(4)), parser.OFPInstructionGotoTable(1)]),
            flowmod(
                table_id=1,
                instructions=[parser.OFPInstructionActions(ofp.OFPIT_CLEAR_ACTIONS, [])],
            ),
        ]
    )
    assert table.lookup(GRE) == []


def test_write_metadata_masked_and_matched(table):
    table.apply(
        [
            flowmod(
                instructions=[
                    parser.OFPInstructionWriteMetadata(0x1234, 0xFF),
                    parser.OFPInstructionGotoTable(1),
                ]
            ),
            flowmod(
                table_id=1,
                priority=200,
                instructions=[apply_actions(output(2))],
                metadata=(0x34, 0xFF),
            ),
            flowmod(
                table_id=1,
                priority=300,
                instructions=[apply_actions(output(5))],
                metadata=(0xAB34, 0xFFFF),
            ),
            flowmod(table_id=1, instructions=[apply_actions(output(3))]),
        ]
    )
    assert ports(table.lookup(GRE)) == [2]  # metadata 0 -> 0x34
    assert ports(table.lookup({**GRE, "metadata": 0xAB00})) == [5]  # -> 0xAB34
    (out,) = table.lookup(GRE)
    assert "metadata" not in out


def test_group_action_not_implemented(table):
    table.apply([flowmod(instructions=[apply_actions(parser.OFPActionGroup(1))])])
    with pytest.raises(NotImplementedError):
        table.lookup(GRE)


# ------------------------------------------------------------------ flow-mod commands


def test_add_identical_match_and_priority_replaces(table):
    table.apply([flowmod(cookie=1, instructions=[apply_actions(output(2))], ip_proto=47)])
    table.lookup(GRE)
    table.apply([flowmod(cookie=2, instructions=[apply_actions(output(3))], ip_proto=47)])
    (flow,) = table.flows()
    assert (flow.cookie, flow.packet_count) == (2, 1)
    assert ports(table.lookup(GRE)) == [3]
    reset = flowmod(cookie=3, instructions=[apply_actions(output(4))], ip_proto=47)
    reset.flags = ofp.OFPFF_RESET_COUNTS
    table.apply([reset])
    assert table.flows()[0].packet_count == 0
    # Same match, different priority: a second flow.
    table.apply([flowmod(priority=1, ip_proto=47)])
    assert table.flow_count() == 2


def test_add_with_check_overlap(table):
    table.apply([flowmod(ip_proto=47)])
    clash = flowmod(eth_type=0x800)
    clash.flags = ofp.OFPFF_CHECK_OVERLAP
    with pytest.raises(ValueError, match="OVERLAP"):
        table.apply([clash])
    disjoint = flowmod(ip_proto=6)
    disjoint.flags = ofp.OFPFF_CHECK_OVERLAP
    table.apply([disjoint])
    assert table.flow_count() == 2


def test_modify_replaces_instructions_and_keeps_counters(table):
    table.apply(
        [
            flowmod(cookie=5, instructions=[apply_actions(output(2))], ip_proto=47),
            flowmod(priority=10, cookie=6, instructions=[apply_actions(output(2))]),
        ]
    )
    table.lookup(GRE)
    table.lookup(GRE)
    mod = parser.OFPFlowMod(
        None,
        command=ofp.OFPFC_MODIFY,
        match=parser.OFPMatch(ip_proto=47),
        instructions=[apply_actions(output(3))],
    )
    table.apply([mod])
    flow, untouched = table.flows()
    assert (flow.cookie, flow.packet_count, flow.byte_count) == (5, 2, 200)
    assert (untouched.cookie, untouched.packet_count) == (6, 0)
    assert ports(table.lookup(GRE)) == [3]
    assert flow.packet_count == 3
    assert ports(table.lookup({**GRE, "ip_proto": 6})) == [2]  # priority-10 flow unchanged
    assert untouched.packet_count == 1


def test_modify_strict_needs_priority_and_match(table):
    table.apply([flowmod(priority=100, instructions=[apply_actions(output(2))], ip_proto=47)])
    mod = parser.OFPFlowMod(
        None,
        command=ofp.OFPFC_MODIFY_STRICT,
        priority=99,
        match=parser.OFPMatch(ip_proto=47),
        instructions=[apply_actions(output(3))],
    )
    table.apply([mod])
    assert ports(table.lookup(GRE)) == [2]
    mod.priority = 100
    table.apply([mod])
    assert ports(table.lookup(GRE)) == [3]
    assert table.flow_count() == 1


def test_modify_without_match_adds_nothing(table):
    table.apply(
        [
            parser.OFPFlowMod(
                None,
                command=ofp.OFPFC_MODIFY,
                match=parser.OFPMatch(ip_proto=47),
                instructions=[apply_actions(output(3))],
            )
        ]
    )
    assert table.flow_count() == 0


def test_delete_by_cookie_mask(table):
    table.apply(
        [
            flowmod(cookie=0x1_0001, ip_proto=47),
            flowmod(table_id=2, cookie=0x1_0002, ip_proto=6),
            flowmod(table_id=1, cookie=0x2_0001, ip_proto=17),
        ]
    )
    table.apply([delete(cookie=0x1_0000, cookie_mask=0xFFFF_0000)])
    assert [f.cookie for f in table.flows()] == [0x2_0001]


def test_delete_non_strict_removes_more_specific_flows(table):
    table.apply(
        [
            flowmod(priority=10, eth_type=0x800),
            flowmod(priority=20, eth_type=0x800, ip_proto=47),
            flowmod(priority=30, eth_type=0x800, ipv4_src="10.0.0.2"),
            flowmod(priority=40, eth_type=0x806),
            flowmod(table_id=4, priority=50, eth_type=0x800, ip_proto=47),
            flowmod(priority=60, eth_type=0x800, ipv4_dst=("10.0.0.0", "255.0.0.0")),
            flowmod(priority=70, eth_type=0x800, ipv4_dst=("10.1.0.0", "255.255.0.0")),
        ]
    )
    table.apply([delete(table_id=0, ip_proto=47)])
    assert sorted(f.priority for f in table.flows()) == [10, 30, 40, 50, 60, 70]
    # A /16 delete does not take the less specific /8 flow (nor the disjoint 10.1/16).
    table.apply([delete(ipv4_dst=("10.0.0.0", "255.255.0.0"))])
    assert sorted(f.priority for f in table.flows()) == [10, 30, 40, 50, 60, 70]
    # A /8 delete takes the /16 inside it but not flows that are less specific.
    table.apply([delete(ipv4_dst=("10.0.0.0", "255.0.0.0"))])
    assert sorted(f.priority for f in table.flows()) == [10, 30, 40, 50]
    # Priority is ignored by a non-strict delete; OFPTT_ALL spans tables.
    table.apply([delete(priority=1, eth_type=0x800)])
    assert [f.priority for f in table.flows()] == [40]
    table.apply([delete()])
    assert table.flow_count() == 0


def test_delete_strict_needs_exact_match_and_priority(table):
    table.apply(
        [
            flowmod(priority=20, eth_type=0x800, ip_proto=47),
            flowmod(priority=30, eth_type=0x800, ip_proto=47),
            flowmod(priority=20, eth_type=0x800),
        ]
    )
    table.apply([delete(strict=True, table_id=0, priority=20, ip_proto=47)])
    assert table.flow_count() == 3  # match must be identical, not just covered
    table.apply([delete(strict=True, table_id=0, priority=20, eth_type=0x800, ip_proto=47)])
    assert [(f.priority, f.match) for f in table.flows()] == [
        (30, {"eth_type": 0x800, "ip_proto": 47}),
        (20, {"eth_type": 0x800}),
    ]


def test_delete_filters_on_out_port_and_ryu_default_deletes_nothing(table):
    table.apply(
        [
            flowmod(priority=1, instructions=[apply_actions(output(2))]),
            flowmod(priority=2, instructions=[write_actions(output(3))]),
        ]
    )
    # Ryu's OFPFlowMod defaults out_port/out_group to 0, which a real switch treats as a filter.
    table.apply([parser.OFPFlowMod(None, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL)])
    assert table.flow_count() == 2
    by_port = delete()
    by_port.out_port = 3
    table.apply([by_port])
    assert [f.priority for f in table.flows()] == [1]


# ------------------------------------------------------------------ timeouts


def test_idle_timeout_expiry_via_advance(table):
    mod = flowmod(cookie=9, instructions=[apply_actions(output(2))], ip_proto=47)
    mod.idle_timeout = 10
    mod.flags = ofp.OFPFF_SEND_FLOW_REM
    table.apply([mod, flowmod(priority=1)])
    assert table.advance(6) == []
    table.lookup(GRE)  # resets the idle timer at t=6
    assert table.advance(9) == []  # t=15: idle for 9s
    (removed,) = table.advance(1)  # t=16: idle for 10s
    assert isinstance(removed, FakeFlow)
    assert (removed.cookie, removed.packet_count) == (9, 1)
    assert removed.flags & ofp.OFPFF_SEND_FLOW_REM
    assert table.flow_count() == 1
    assert table.lookup(GRE) == []


def test_hard_timeout_ignores_traffic(table):
    mod = flowmod(instructions=[apply_actions(output(2))])
    mod.hard_timeout = 5
    table.apply([mod])
    table.advance(4)
    assert ports(table.lookup(GRE)) == [2]
    assert len(table.advance(1)) == 1
    assert table.flow_count() == 0


# ------------------------------------------------------------------ messages / dump


def test_unknown_message_type_raises_type_error(table):
    with pytest.raises(TypeError, match="OFPGroupMod"):
        table.apply([parser.OFPGroupMod(None)])
    with pytest.raises(TypeError, match="str"):
        table.apply(["not a message"])


def test_ignored_messages_and_packet_outs_recorded(table):
    packet_out = parser.OFPPacketOut(
        None,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[output(1)],
        data=b"x",
    )
    table.apply(
        [
            parser.OFPBarrierRequest(None),
            parser.OFPSetConfig(None, 0, 0xFFFF),
            parser.OFPPortDescStatsRequest(None, 0),
            parser.OFPFlowStatsRequest(None),
            packet_out,
        ]
    )
    assert table.packet_outs == [packet_out]
    assert table.flow_count() == 0


def test_flows_sorted_and_filtered_by_table(table):
    table.apply(
        [
            flowmod(table_id=1, priority=5),
            flowmod(table_id=0, priority=1),
            flowmod(table_id=1, priority=9, ip_proto=6),
            flowmod(table_id=0, priority=7, ip_proto=6),
        ]
    )
    assert [(f.table_id, f.priority) for f in table.flows()] == [(0, 7), (0, 1), (1, 9), (1, 5)]
    assert [f.priority for f in table.flows(1)] == [9, 5]
    assert table.flow_count() == 4


def test_str_dump(table):
    mod = flowmod(
        cookie=0x10,
        instructions=[
            apply_actions(parser.OFPActionSetField(ipv4_src="203.0.113.1"), output(3)),
            parser.OFPInstructionGotoTable(1),
        ],
        eth_type=0x800,
        ipv4_dst=("10.0.0.0", "255.255.255.0"),
    )
    mod.idle_timeout = 30
    table.apply([mod, flowmod(table_id=1, priority=0)])
    table.lookup({**GRE, "ipv4_dst": "10.0.0.5"})
    lines = str(table).splitlines()
    assert lines == [
        "cookie=0x10, table=0, n_packets=1, n_bytes=100, idle_timeout=30, "
        "priority=100,eth_type=0x800,ipv4_dst=10.0.0.0/255.255.255.0 "
        "actions=set_field:203.0.113.1->ipv4_src,output:3,goto_table:1",
        "cookie=0x0, table=1, n_packets=1, n_bytes=100, priority=0 actions=drop",
    ]
