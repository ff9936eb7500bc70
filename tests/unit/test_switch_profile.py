"""Switch profiles: flow changes stay ahead of the control packets that depend on them.

A call's peers may send GRE as soon as they see its Outgoing-Call-Request (the
server) or Reply (the client). So the gateway's via-controller flow must be in
the switch before the request leaves it, and the pair's rewrite flows before
the reply does. The ``openflow`` profile fences them with barriers, which
holds even on a switch that reorders as much as the spec allows; the ``ovs``
profile relies on the switch running messages in order and sends no barrier.
"""

from __future__ import annotations

import dataclasses

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import GatewayConfig, SwitchProfile
from ryu_pptp_alg.pipeline import Priority
from tests.unit.fakeswitch import FakeSwitch, Sent, tcp_of
from tests.unit.test_inbound import Inbound, forward_config, forward_switch
from tests.unit.test_outbound import OUTSIDE, PUBLIC, SERVER, TIMEOUTS, Peers, gateway_config

CMT = pptp.ControlMessageType


def with_profile(config: GatewayConfig, profile: str) -> GatewayConfig:
    return dataclasses.replace(config, switch_profile=SwitchProfile(profile))


def profile_switch(clock, profile: str, reorder: bool) -> FakeSwitch:
    switch = FakeSwitch.create(with_profile(gateway_config(), profile), clock, TIMEOUTS)
    switch.reorder = reorder
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return switch


def gre_flows_before_call_messages(messages: list) -> dict[CMT, set[int]]:
    """For each call request and reply the switch sent out: the priorities of the GRE
    flow-mods it had executed before it."""
    added: set[int] = set()
    seen: dict[CMT, set[int]] = {}
    for msg in messages:
        if isinstance(msg, parser.OFPFlowMod) and msg.table_id == pipeline.TABLE_GRE \
                and msg.command == ofp.OFPFC_ADD \
                and msg.priority > pipeline.Priority.GRE_OUTWARD_UNMATCHED:  # not static
            added.add(msg.priority)
        elif isinstance(msg, parser.OFPPacketOut):
            payload = tcp_of_packet_out(msg)
            kind = None if payload is None else pptp.peek_type(payload)
            if kind in (CMT.OUTGOING_CALL_REQUEST, CMT.OUTGOING_CALL_REPLY):
                seen[kind] = set(added)
    return seen


def tcp_of_packet_out(msg: parser.OFPPacketOut) -> bytes | None:
    eth = fr.parse_ethernet(bytes(msg.data))
    if eth.ethertype != fr.ETH_TYPE_IPV4:
        return None
    _, tcp = tcp_of(Sent(0, bytes(msg.data), {}))
    return tcp.payload or None


def place_call(switch: FakeSwitch) -> Peers:
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    return peers


@pytest.mark.parametrize("profile,reorder", [("openflow", False), ("openflow", True),
                                             ("ovs", False)])
def test_gre_flows_are_in_the_switch_before_the_peers_can_send_gre(clock, profile, reorder):
    switch = profile_switch(clock, profile, reorder)
    place_call(switch)
    assert gre_flows_before_call_messages(switch.messages) == {
        CMT.OUTGOING_CALL_REQUEST: {Priority.GRE_VIA_CONTROLLER},
        CMT.OUTGOING_CALL_REPLY: {Priority.GRE_VIA_CONTROLLER, Priority.GRE_PAIR}}
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert not back.via_controller


def test_without_barriers_a_reordering_switch_would_let_gre_overtake(clock):
    """Why ``ovs`` is a profile and not the default: the check above can fail."""
    switch = profile_switch(clock, "ovs", reorder=True)
    place_call(switch)
    assert gre_flows_before_call_messages(switch.messages)[CMT.OUTGOING_CALL_REQUEST] == set()


def test_ovs_profile_sends_no_barrier_and_holds_nothing(clock):
    switch = profile_switch(clock, "ovs", reorder=False)
    switch.hold_barriers = True  # would hold the reply, were a barrier sent
    start = len(switch.messages)
    peers = place_call(switch)
    call_msgs = switch.messages[start:]
    assert not any(isinstance(m, parser.OFPBarrierRequest) for m in call_msgs)
    assert switch.gateway.fence.held == {}
    echo = peers.from_server(pptp.EchoRequest(identifier=1))
    assert [pptp.peek_type(tcp_of(s)[1].payload) for s in echo] == [CMT.ECHO_REQUEST]
    (row,) = switch.gateway.sessions()
    assert [c["path"] for c in row["calls"]] == ["fast"]


def test_openflow_profile_sends_a_barrier_per_flow_change(clock):
    switch = profile_switch(clock, "openflow", reorder=False)
    start = len(switch.messages)
    place_call(switch)
    barriers = [m for m in switch.messages[start:] if isinstance(m, parser.OFPBarrierRequest)]
    # Before the request; between the reply's flow additions and the deletion of the
    # via-controller flow they replace (else a reordering switch could delete first and
    # drop GRE meanwhile); and the one the reply waits for.
    assert len(barriers) == 3


@pytest.mark.parametrize("profile,reorder", [("openflow", True), ("ovs", False)])
def test_inbound_reply_also_follows_its_flows(clock, profile, reorder):
    switch = forward_switch(clock, with_profile(forward_config(), profile))
    switch.reorder = reorder
    link = Inbound(switch)
    link.start()
    link.from_peer(pptp.OutgoingCallRequest(call_id=0x31))
    (reply,) = link.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=0x31))
    assert pptp.peek_type(tcp_of(reply)[1].payload) == CMT.OUTGOING_CALL_REPLY
    assert gre_flows_before_call_messages(switch.messages) == {
        CMT.OUTGOING_CALL_REQUEST: {Priority.GRE_VIA_CONTROLLER},
        CMT.OUTGOING_CALL_REPLY: {Priority.GRE_VIA_CONTROLLER, Priority.GRE_PAIR}}
    barriers = [m for m in switch.messages if isinstance(m, parser.OFPBarrierRequest)]
    # The pipeline's own, at connect; openflow adds the request's, the reply's, and the one
    # between the reply's flow additions and the deletion they replace.
    assert len(barriers) == (1 if profile == "ovs" else 4)


def test_flows_added_and_deleted_in_one_batch_leave_none_on_a_reordering_switch(clock):
    """Found by the fuzzer: two clients share a key; both control connections go idle in
    one tick. The first's teardown makes the second's pair fast (its inward rewrite is
    added), the second's teardown deletes its flows, in one batch: run last-first, the
    addition outlived its call."""
    timeouts = dataclasses.replace(TIMEOUTS, gre_idle=600, control_idle=100)
    switch = FakeSwitch.create(with_profile(gateway_config(), "openflow"), clock, timeouts)
    switch.reorder = True
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    for port, server_id in ((1, 0x80), (2, 0x90)):
        peers = Peers(switch, port)
        peers.start()
        peers.call(7 + port, server_id)
    assert switch.gre_flows()
    switch.tick(clock, timeouts.control_idle)
    assert switch.gateway.state.pairs == {}
    assert switch.gre_flows() == []
