"""The switch refuses GRE flows (a full table): the calls that fit work, the others fall
back to the controller path or are reported refused, and the counters say so."""

from __future__ import annotations

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import pptp
from tests.unit.fakeswitch import FakeSwitch
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


def limited_switch(clock, gre_table_room: int) -> FakeSwitch:
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.table_limits[pipeline.TABLE_GRE] = gre_table_room
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return switch


def paths(switch: FakeSwitch) -> dict[str, str]:
    return {row["client"].split(":")[0]: call["path"]
            for row in switch.gateway.sessions() for call in row["calls"]}


def test_the_call_that_fits_works_and_the_one_that_does_not_is_reported_refused(clock):
    switch = limited_switch(clock, 4)  # the drop flow, and one call's flows at its peak
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers, server_id in ((first, 0x80), (second, 0x90)):
        peers.start()
        peers.call(7, server_id)
    assert paths(switch) == {str(CLIENTS[1].ip): "fast", str(CLIENTS[2].ip): "refused"}
    assert switch.refused and switch.gateway.counters["gre_flows_refused"] >= 1
    (out,) = switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
    assert not out.via_controller and out.port == OUTSIDE
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert back.port == 1
    # The refused call's GRE is dropped, never reported as carried.
    assert switch.send(2, CLIENTS[2].gre(SERVER_IP, 0x90)) == []
    second.from_server(pptp.CallDisconnectNotify(call_id=0x90))  # it ends cleanly
    assert paths(switch) == {str(CLIENTS[1].ip): "fast"}


def test_a_refused_inward_rewrite_falls_back_to_the_controller_path(clock):
    switch = limited_switch(clock, 3)  # the drop flow, the outward rewrite, and one more
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
    switch = limited_switch(clock, 4)
    for port, server_id in ((1, 0x80), (2, 0x90)):
        peers = Peers(switch, port)
        peers.start()
        peers.call(7, server_id)
    before, refusals = paths(switch), len(switch.refused)
    switch.restart_controller()
    assert paths(switch) == before == {str(CLIENTS[1].ip): "fast",
                                       str(CLIENTS[2].ip): "refused"}
    assert len(switch.refused) == refusals  # the new controller asks for nothing refused


def test_with_barriers_the_refusal_is_known_before_the_reply_is_released(clock):
    import dataclasses

    from ryu_pptp_alg.config import SwitchProfile
    config = dataclasses.replace(gateway_config((PUBLIC, PUBLIC2)),
                                 switch_profile=SwitchProfile.OPENFLOW)
    switch = FakeSwitch.create(config, clock, TIMEOUTS)
    switch.table_limits[pipeline.TABLE_GRE] = 3
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    assert paths(switch) == {str(CLIENTS[1].ip): "slow"}
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert back.via_controller
