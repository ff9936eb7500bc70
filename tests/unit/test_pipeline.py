"""The pipeline the code emits: as documented in flows/, and as it behaves."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import pairs, pipeline
from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.records import Hop, Pair
from tests.fakeoftable import FakeOFTable
from tests.unit.test_config import VALID

REFERENCE = yaml.safe_load((Path(__file__).parents[2] / "flows" / "pipeline.yaml").read_text())
GATEWAY = config_from_dict(VALID).gateways[0]
FOREIGN_COOKIE = 0x77
NEXT_TABLE_PORT = 99


def describe_action(action: Any) -> str:
    if isinstance(action, parser.OFPActionOutput):
        if action.port == ofp.OFPP_CONTROLLER:
            assert action.max_len == ofp.OFPCML_NO_BUFFER
            return "controller"
        return f"output {action.port}"
    if isinstance(action, parser.OFPActionSetField):
        return f"set {action.key}={action.value}"
    if isinstance(action, parser.OFPActionDecNwTtl):
        return "dec_ttl"
    raise AssertionError(f"undocumented action {action}")


def expand(template: Any, values: dict[str, str]) -> Any:
    """The reference with {placeholders} filled in."""
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, list):
        return [expand(item, values) for item in template]
    if isinstance(template, dict):
        return {key: expand(item, values) for key, item in template.items()}
    return template


def documented_static_flows() -> list[dict[str, Any]]:
    values = {"inside_ip": str(GATEWAY.inside_address.ip), "gateway_mac": GATEWAY.gateway_mac}
    flows = []
    for flow in REFERENCE["static_flows"]:
        body = {k: v for k, v in flow.items() if k not in ("name", "for_each")}
        each = flow.get("for_each")
        if each == "inside_ports":
            flows.extend(expand(body, {**values, "port": p}) for p in GATEWAY.inside_ports)
        elif each == "public_addresses, outside_ports":
            flows.extend(expand(body, {**values, "public_address": str(a), "port": p})
                         for a in GATEWAY.public_addresses for p in GATEWAY.outside_ports)
        else:
            assert each is None, each
            flows.append(expand(body, values))
    return [{**f, "match": {k: int(v) if k == "in_port" else v
                            for k, v in f["match"].items()}} for f in flows]


def describe(flow_mod: Any) -> dict[str, Any]:
    actions: list[str] = []
    for inst in flow_mod.instructions:
        if isinstance(inst, parser.OFPInstructionGotoTable):
            target = inst.table_id
            actions.append("goto next_table" if target == GATEWAY.next_table else f"goto {target}")
        elif isinstance(inst, parser.OFPInstructionMeter):
            actions.append(f"meter {inst.meter_id}")
        else:
            actions.extend(describe_action(a) for a in inst.actions)
    return {
        "cookie": flow_mod.cookie,
        "table": flow_mod.table_id,
        "priority": flow_mod.priority,
        "match": dict(flow_mod.match.items()),
        "actions": actions,
    }


def test_static_flows_match_the_reference():
    assert [describe(f) for f in pipeline.static_flows(GATEWAY)] == documented_static_flows()


def test_pair_flows_match_the_reference():
    pair = Pair(5, IPv4Address("10.0.0.11"), IPv4Address("198.51.100.10"),
                   IPv4Address("203.0.113.1"), Hop("02:00:00:00:00:11", 1),
                   Hop("02:00:00:00:00:99", 3))
    values = {"gateway_mac": GATEWAY.gateway_mac, "inside": "10.0.0.11",
              "outside": "198.51.100.10", "public": "203.0.113.1",
              "outside_next_hop_mac": "02:00:00:00:00:99", "outside_port": "3",
              "inside_mac": "02:00:00:00:00:11", "inside_port": "1"}
    emitted = {"gre_outward": pairs.outward_flow(pair, GATEWAY.gateway_mac, 60),
               "gre_inward": pairs.inward_flow(pair, GATEWAY.gateway_mac, 60),
               "gre_via_controller": pairs.via_controller_flow(
                   pair.key, pipeline.cookie(pipeline.CookieKind.GRE_KEY, 5))}
    for flow in REFERENCE["pair_flows"]:
        documented = expand({k: flow[k] for k in ("table", "priority", "match", "actions")},
                            values)
        described = describe(emitted[flow["name"]])
        assert pipeline.decode_cookie(described.pop("cookie")) == pipeline.DecodedCookie(
            pipeline.CookieKind[flow["cookie_kind"].upper()], 5)
        assert described == documented, flow["name"]


def test_reference_priorities_agree_with_code():
    for name, value in REFERENCE["priorities"].items():
        assert getattr(pipeline.Priority, name.upper()) == value


def test_reference_names_and_cookies_agree_with_code():
    for flow in REFERENCE["static_flows"]:
        member = pipeline.PipelineFlow[flow["name"].upper()]
        assert flow["cookie"] == pipeline.cookie(pipeline.CookieKind.PIPELINE, member)
    assert {f["name"] for f in REFERENCE["static_flows"]} == {
        f.name.lower() for f in pipeline.PipelineFlow}
    assert REFERENCE["cookies"]["tag_mask"] == pipeline.COOKIE_TAG_MASK
    assert {k: v for k, v in REFERENCE["cookies"]["kinds"].items()} == {
        kind.value: kind.name.lower() for kind in pipeline.CookieKind}
    assert REFERENCE["tables"][pipeline.TABLE_CLASSIFY] == "classify"
    assert REFERENCE["tables"][pipeline.TABLE_GRE] == "gre"


def test_cookie_codec():
    value = pipeline.cookie(pipeline.CookieKind.GRE_PAIR, 12345)
    assert pipeline.decode_cookie(value) == pipeline.DecodedCookie(
        pipeline.CookieKind.GRE_PAIR, 12345)
    assert pipeline.decode_cookie(FOREIGN_COOKIE) is None
    assert pipeline.decode_cookie(pipeline.COOKIE_TAG | (0x7F << 40)) is None
    with pytest.raises(ValueError):
        pipeline.cookie(pipeline.CookieKind.GRE_PAIR, 1 << 40)


@pytest.fixture
def table():
    """A switch with another application's flow in the next table, then our pipeline."""
    fake = FakeOFTable()
    fake.apply([parser.OFPFlowMod(
        None, table_id=GATEWAY.next_table, priority=0, cookie=FOREIGN_COOKIE,
        match=parser.OFPMatch(),
        instructions=[parser.OFPInstructionActions(
            ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(NEXT_TABLE_PORT)])])])
    fake.apply(pipeline.static_flows(GATEWAY))
    return fake


def ip_packet(**fields: Any) -> dict[str, Any]:
    return {"in_port": 1, "eth_src": "02:00:00:00:00:02", "eth_dst": GATEWAY.gateway_mac,
            "eth_type": 0x0800, "ipv4_src": "10.0.0.2", "ipv4_dst": "198.51.100.7",
            "ip_ttl": 64, **fields}


@pytest.mark.parametrize("fields", [
    {"ip_proto": 6, "tcp_src": 40000, "tcp_dst": 1723},
    {"ip_proto": 6, "tcp_src": 1723, "tcp_dst": 40000},
])
def test_pptp_control_goes_to_controller(table, fields):
    (out,) = table.lookup(ip_packet(**fields))
    assert out["out_port"] == ofp.OFPP_CONTROLLER
    assert pipeline.decode_cookie(out["cookie"]).kind == pipeline.CookieKind.PIPELINE


SIDES = [(GATEWAY.inside_address.ip, GATEWAY.inside_ports, GATEWAY.outside_ports),
         *((a, GATEWAY.outside_ports, GATEWAY.inside_ports) for a in GATEWAY.public_addresses)]


@pytest.mark.parametrize(("address", "ports", "wrong_side"), SIDES)
def test_arp_for_the_gateway_goes_to_controller_from_its_side_only(table, address, ports,
                                                                  wrong_side):
    def arp(port: int) -> list[dict[str, Any]]:
        return table.lookup({"in_port": port, "eth_type": 0x0806, "arp_op": 1,
                             "arp_spa": "10.0.0.9", "arp_tpa": str(address)})
    for port in ports:
        (out,) = arp(port)
        assert out["out_port"] == ofp.OFPP_CONTROLLER
    for port in wrong_side:
        assert all(o["out_port"] != ofp.OFPP_CONTROLLER for o in arp(port))


def test_outside_gre_of_no_call_is_dropped_and_counted(table):
    (outside,) = GATEWAY.outside_ports
    assert table.lookup(ip_packet(in_port=outside, ip_proto=47)) == []
    (unmatched,) = [f for f in table.flows(pipeline.TABLE_GRE) if f.priority == 0]
    assert unmatched.packet_count == 1


def test_inside_gre_of_no_pair_goes_to_the_controller(table):
    # A pair whose outward flow the switch refused is carried there.
    for port in GATEWAY.inside_ports:
        (out,) = table.lookup(ip_packet(in_port=port, ip_proto=47))
        assert out["out_port"] == ofp.OFPP_CONTROLLER
        assert pipeline.decode_cookie(out["cookie"]).ident \
            == pipeline.PipelineFlow.GRE_OUTWARD_UNMATCHED


@pytest.mark.parametrize("packet", [
    ip_packet(ip_proto=6, tcp_src=40000, tcp_dst=80),
    ip_packet(ip_proto=17, udp_src=5000, udp_dst=53),
    ip_packet(ip_proto=1),
    {"in_port": 3, "eth_type": 0x0806, "arp_op": 1, "arp_spa": "203.0.113.9",
     "arp_tpa": "203.0.113.77"},  # ARP for somebody else
    ip_packet(eth_dst="02:00:00:00:00:07", ip_proto=6, tcp_src=40000, tcp_dst=1723),  # not routed
    ip_packet(eth_dst="02:00:00:00:00:07", ip_proto=47),
], ids=["http", "dns", "icmp", "arp-other", "pptp-on-lan", "gre-on-lan"])
def test_other_traffic_reaches_next_table_untouched(table, packet):
    (out,) = table.lookup(packet)
    assert out.pop("out_port") == NEXT_TABLE_PORT
    assert {k: v for k, v in out.items() if k in packet} == packet


def test_reconnect_replaces_our_flows_and_keeps_foreign_ones(table):
    before = table.flow_count()
    table.apply(pipeline.static_flows(GATEWAY))
    assert table.flow_count() == before == len(pipeline.static_flows(GATEWAY)) + 1
    assert [f.cookie for f in table.flows(GATEWAY.next_table)] == [FOREIGN_COOKIE]


def test_metered_pipeline_sends_every_controller_flow_through_a_meter():
    metered = pipeline.static_flows(GATEWAY, metered=True)
    to_controller = [f for f in metered if "controller" in describe(f)["actions"]]
    assert to_controller and all(
        isinstance(f.instructions[0], parser.OFPInstructionMeter) for f in to_controller)
    ports = (*GATEWAY.inside_ports, *GATEWAY.outside_ports)
    new = [f for f in to_controller if f.priority == pipeline.Priority.PPTP_CONTROL]
    assert sorted((dict(f.match.items())["in_port"], f.instructions[0].meter_id)
                  for f in new) == sorted(
        (p, pipeline.port_meter(GATEWAY, p, "new_connections")) for p in ports
        for _ in range(2))
    arp = [f for f in to_controller if f.priority == pipeline.Priority.ARP]
    assert sorted((dict(f.match.items())["in_port"], f.instructions[0].meter_id)
                  for f in arp) == sorted(
        [(p, 17 + 3 * i) for i, p in enumerate(GATEWAY.inside_ports)]
        + [(p, 17 + 3 * (len(GATEWAY.inside_ports) + i))
           for i, p in enumerate(GATEWAY.outside_ports) for _ in GATEWAY.public_addresses])
    assert {m.meter_id for m in pipeline.meter_mods(GATEWAY, config_from_dict(VALID).rates)} \
        == {2, 3, *(16 + i for i in range(3 * len(ports)))}
    assert REFERENCE["meters"] == {"control": pipeline.Meter.CONTROL, "gre": pipeline.Meter.GRE,
                                   "per_port_first": pipeline.Meter.PORTS,
                                   "per_port": list(pipeline.PER_PORT)}


def test_block_flow_matches_the_reference():
    (documented,) = REFERENCE["block_flows"]
    flow = pipeline.block_flow(IPv4Address("192.0.2.66"), 10)
    assert describe(flow) == {
        "cookie": pipeline.cookie(pipeline.CookieKind.BLOCKED_HOST, int(IPv4Address(
            "192.0.2.66"))),
        "table": documented["table"], "priority": documented["priority"],
        "match": expand(documented["match"], {"host": "192.0.2.66"}),
        "actions": documented["actions"]}
    assert flow.hard_timeout == 10 and flow.idle_timeout == 0
