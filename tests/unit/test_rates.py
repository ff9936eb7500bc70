"""Controller-bound traffic on budgets: meters in the switch (ovs profile), token buckets
in the controller otherwise; tracked connections apart from new ones, new ones per port."""

from __future__ import annotations

import dataclasses

from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import Rates, SwitchProfile
from ryu_pptp_alg.gateway import Gateway
from tests.unit.fakeswitch import FakeSwitch, TcpEnd, tcp_of
from tests.unit.test_outbound import (
    CLIENTS,
    OUTSIDE,
    PUBLIC,
    SERVER,
    SERVER_IP,
    TIMEOUTS,
    Peers,
    gateway_config,
)


def switch_with(clock, profile: SwitchProfile, rates: Rates) -> FakeSwitch:
    config = dataclasses.replace(gateway_config(), switch_profile=profile)
    switch = FakeSwitch(Gateway(config, TIMEOUTS, clock=clock, rates=rates))
    switch.apply(switch.gateway.datapath_up())
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return switch


def test_without_meters_a_syn_flood_on_one_port_spends_only_that_ports_budget(clock):
    switch = switch_with(clock, SwitchProfile.OPENFLOW, Rates(new_connections=50))
    established = Peers(switch, 4)  # answered before the flood: it has its own flows
    established.start()
    for sport in range(1024, 1024 + 500):  # no time passes: the bucket never refills
        switch.send(1, TcpEnd(CLIENTS[1], sport, SERVER_IP, 1723, 1).segment(fr.TCP_SYN))
    counters = switch.gateway.counters
    assert counters["rate_limited_new_connections"] == 500 - 50  # the bucket held 50
    legit = Peers(switch, 2)  # another port, another budget
    legit.start()
    legit.call(7, 0x80)
    (echo,) = established.from_client(pptp.EchoRequest(identifier=1))  # tracked: its own
    assert pptp.parse(tcp_of(echo)[1].payload) == pptp.EchoRequest(identifier=1)
    clock.now += 1  # a second later the flooded port has budget again
    assert Peers(switch, 1, sport=60000).public[0] == PUBLIC


def test_with_meters_every_controller_flow_is_metered_and_the_meters_set(clock):
    rates = Rates(arp=10, new_connections=20, control=30, gre=40)
    switch = switch_with(clock, SwitchProfile.OVS, rates)
    assert {m: switch.meters[m].bands[0].rate for m in switch.meters} == \
        pipeline.meter_rates(switch.gateway.config, rates)
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))  # a via-controller GRE flow too
    to_controller = [f for f in switch.table.flows() if any(
        isinstance(i, parser.OFPInstructionActions) and any(
            getattr(a, "port", None) == 0xFFFFFFFD for a in i.actions)
        for i in f.instructions)]
    assert to_controller
    for flow in to_controller:
        (meter,) = [i.meter_id for i in flow.instructions
                    if isinstance(i, parser.OFPInstructionMeter)]
        kind = pipeline.decode_cookie(flow.cookie).kind
        if kind == pipeline.CookieKind.CONNECTION:
            assert meter == pipeline.Meter.CONTROL
        elif kind == pipeline.CookieKind.GRE_KEY:
            assert meter == pipeline.Meter.GRE
    assert switch.gateway.counters["rate_limited_new_connections"] == 0  # the switch's job


def test_tracked_flows_come_with_the_answer_and_go_with_the_connection(clock):
    switch = switch_with(clock, SwitchProfile.OVS, Rates())

    def tracked():
        return [f for f in switch.table.flows(0)
                if pipeline.decode_cookie(f.cookie).kind == pipeline.CookieKind.CONNECTION]
    client = TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000)
    switch.send(1, client.segment(fr.TCP_SYN))
    assert tracked() == []  # unanswered: a SYN flood makes no flows
    peers = Peers(switch, 2)
    assert len(tracked()) == 2
    switch.send(2, peers.client.segment(fr.TCP_RST))
    switch.tick(clock, TIMEOUTS.closing_linger)
    assert tracked() == []


def test_without_meters_an_arp_flood_on_one_port_spends_only_that_ports_budget(clock):
    switch = switch_with(clock, SwitchProfile.OPENFLOW, Rates(arp=20))
    gateway_ip = switch.gateway.config.inside_address.ip
    for _ in range(300):  # no time passes: the bucket never refills
        switch.send(1, CLIENTS[1].arp_request(gateway_ip))
    assert switch.gateway.counters["rate_limited_arp"] == 300 - 20
    (reply,) = switch.send(2, CLIENTS[2].arp_request(gateway_ip))  # another port's budget
    assert reply.port == 2
    assert reply.frame is not None
    assert fr.parse_arp(fr.parse_ethernet(reply.frame).payload).op == fr.ARP_REPLY
    assert switch.send(1, CLIENTS[1].arp_request(gateway_ip)) == []
    clock.now += 1
    assert len(switch.send(1, CLIENTS[1].arp_request(gateway_ip))) == 1
