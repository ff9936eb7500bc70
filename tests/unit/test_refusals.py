"""The switch refuses GRE flows (a full table): the calls that fit work, the others fall
back to the controller path or are reported refused, and the counters say so."""

from __future__ import annotations

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from tests.unit.fakeswitch import FakeSwitch, TcpEnd, tcp_of
from tests.unit.test_outbound import (
    CLIENTS,
    OUTSIDE,
    PUBLIC,
    PUBLIC2,
    SERVER,
    SERVER_IP,
    TIMEOUTS,
    Peers,
    gateway_config,
)

# The GRE table's static flows: the drop flow, and one per inside port sending an inside
# host's GRE no pair's flow takes to the controller.
STATIC = 1 + len(gateway_config().inside_ports)


def limited_switch(clock, gre_table_room: int) -> FakeSwitch:
    """``gre_table_room``: entries past the static flows."""
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.table_limits[pipeline.TABLE_GRE] = STATIC + gre_table_room
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return switch


def paths(switch: FakeSwitch) -> dict[str, str]:
    return {row["client"].split(":")[0]: call["path"]
            for row in switch.gateway.sessions() for call in row["calls"]}


def test_the_call_that_fits_works_and_the_one_that_does_not_goes_through_the_controller(
        clock):
    switch = limited_switch(clock, 3)  # one call's flows at their peak
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers, server_id in ((first, 0x80), (second, 0x90)):
        peers.start()
        peers.call(7, server_id)
    assert paths(switch) == {str(CLIENTS[1].ip): "fast", str(CLIENTS[2].ip): "slow"}
    assert switch.refused and switch.gateway.counters["gre_flows_refused"] == 2
    (out,) = switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
    assert not out.via_controller and out.port == OUTSIDE
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert back.port == 1 and not back.via_controller
    # Both rewrites of the second call were refused: the controller carries it both ways.
    public = second.public[0]
    (out,) = switch.send(2, CLIENTS[2].gre(SERVER_IP, 0x90))
    assert out.via_controller and out.port == OUTSIDE
    assert fr.parse_ipv4(fr.parse_ethernet(out.frame).payload).src == public
    (back,) = switch.send(OUTSIDE, SERVER.gre(public, 7))
    assert back.via_controller and back.port == 2
    assert switch.gateway.counters["gre_outward_via_controller"] == 1
    second.from_server(pptp.CallDisconnectNotify(call_id=0x90))  # it ends cleanly
    assert paths(switch) == {str(CLIENTS[1].ip): "fast"}
    assert switch.send(2, CLIENTS[2].gre(SERVER_IP, 0x90)) == []  # no pair: dropped
    assert switch.gateway.counters["gre_no_call"] == 1


def test_a_call_with_no_room_even_for_the_controller_path_is_refused_to_its_client(clock):
    switch = limited_switch(clock, 0)
    peers = Peers(switch, 1)
    peers.start()
    (request,) = peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    assert paths(switch) == {str(CLIENTS[1].ip): "refused"}  # the switch said no at once
    seen_id = pptp.parse(tcp_of(request)[1].payload).call_id
    frame = peers.server.message(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=seen_id))
    (reply,) = switch.send(OUTSIDE, frame)
    answer = pptp.parse(tcp_of(reply)[1].payload)
    assert (answer.peer_call_id, answer.result_code, answer.error_code) == (
        7, pptp.OutgoingCallResult.GENERAL_ERROR, pptp.GeneralErrorCode.NO_RESOURCE)
    assert paths(switch) == {}  # it ended with the reply, its pair too
    assert switch.gateway.state.pairs == {}
    counters = switch.gateway.counters
    assert counters["calls_refused_no_path"] == 1 and counters["gre_flows_refused"] >= 1
    assert counters["calls_established"] == 0
    assert switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7)) == []
    (again,) = switch.send(OUTSIDE, frame)  # retransmitted: it goes out the same way
    assert tcp_of(again)[1].payload == tcp_of(reply)[1].payload


def test_a_refused_inward_rewrite_falls_back_to_the_controller_path(clock):
    switch = limited_switch(clock, 2)  # the outward rewrite, and one more
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    assert paths(switch) == {str(CLIENTS[1].ip): "slow"}
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert back.via_controller and back.port == 1
    (out,) = switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
    assert not out.via_controller
    assert switch.gateway.counters["gre_flows_refused"] == 1


def test_refusals_survive_a_restart(clock):
    switch = limited_switch(clock, 3)
    for port, server_id in ((1, 0x80), (2, 0x90)):
        peers = Peers(switch, port)
        peers.start()
        peers.call(7, server_id)
    before, refusals = paths(switch), len(switch.refused)
    switch.restart_controller()
    assert paths(switch) == before == {str(CLIENTS[1].ip): "fast",
                                       str(CLIENTS[2].ip): "slow"}
    assert len(switch.refused) == refusals  # the new controller asks for nothing refused


def test_with_barriers_the_refusal_is_known_before_the_reply_is_released(clock):
    import dataclasses

    from ryu_pptp_alg.config import SwitchProfile
    config = dataclasses.replace(gateway_config((PUBLIC, PUBLIC2)),
                                 switch_profile=SwitchProfile.OPENFLOW)
    switch = FakeSwitch.create(config, clock, TIMEOUTS)
    switch.table_limits[pipeline.TABLE_GRE] = STATIC + 2
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    assert paths(switch) == {str(CLIENTS[1].ip): "slow"}
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert back.via_controller


# --- the state store cannot write (high availability: etcd without quorum) ------------------


def test_while_the_store_cannot_write_new_set_ups_are_refused_and_calls_up_go_on(clock):
    switch = limited_switch(clock, 3)
    first = Peers(switch, 1)
    first.start()
    first.call(7, 0x80)
    busy = Peers(switch, 2)  # a control connection up, no call yet
    busy.start()
    switch.gateway.store_down = True  # Alg.set_store_down, from the election's view
    # A new control connection: its SYN goes nowhere (the client retries).
    end = TcpEnd(CLIENTS[1], 40001, SERVER_IP, 1723, 1000)
    assert switch.send(1, end.segment(fr.TCP_SYN)) == []
    assert switch.gateway.counters["refused_store_unavailable"] == 1
    # A call on the connection already up: the server's reply reaches the client failed.
    (request,) = busy.from_client(pptp.OutgoingCallRequest(call_id=9))
    seen_id = pptp.parse(tcp_of(request)[1].payload).call_id
    (reply,) = busy.from_server(pptp.OutgoingCallReply(call_id=0x90, peer_call_id=seen_id))
    answer = pptp.parse(tcp_of(reply)[1].payload)
    assert (answer.peer_call_id, answer.result_code, answer.error_code) == (
        9, pptp.OutgoingCallResult.GENERAL_ERROR, pptp.GeneralErrorCode.NO_RESOURCE)
    assert switch.gateway.counters["calls_refused_store_unavailable"] == 1
    assert switch.gateway.counters["calls_refused_no_path"] == 0
    assert paths(switch) == {str(CLIENTS[1].ip): "fast"}
    # The call already up carries on, both ways.
    (out,) = switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
    assert out.port == OUTSIDE
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert back.port == 1
    switch.gateway.store_down = False  # writes again: set-ups are accepted again
    busy.call(11, 0x91)
    assert paths(switch) == {str(CLIENTS[1].ip): "fast", str(CLIENTS[2].ip): "slow"}
    (syn,) = switch.send(1, end.segment(fr.TCP_SYN))
    assert syn.port == OUTSIDE
