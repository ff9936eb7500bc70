"""Bounded state: caps on control connections, early drop, unanswered timeout, refusals."""

from __future__ import annotations

from ipaddress import IPv4Address

from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import Limits
from ryu_pptp_alg.gateway import Gateway
from ryu_pptp_alg.pool import AddressPool
from tests.unit.fakeswitch import FakeClock, FakeSwitch, Host, TcpEnd, tcp_of
from tests.unit.test_inbound import PEER, forward_config
from tests.unit.test_inbound import SERVER as INSIDE_SERVER
from tests.unit.test_outbound import (
    CLIENTS,
    GW_MAC,
    OUTSIDE,
    PUBLIC,
    SERVER,
    SERVER_IP,
    TIMEOUTS,
    Peers,
    gateway_config,
)


def capped_switch(clock: FakeClock, limits: Limits, config=None) -> FakeSwitch:
    config = config or gateway_config()
    switch = FakeSwitch(Gateway(config, TIMEOUTS, clock=clock, limits=limits))
    switch.apply(switch.gateway.datapath_up())
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return switch


def syn(switch: FakeSwitch, port: int, sport: int, host: Host | None = None) -> list:
    client = TcpEnd(host or CLIENTS[port], sport, SERVER_IP, 1723, 1000)
    return switch.send(port, client.segment(fr.TCP_SYN))


def test_one_host_cannot_hold_more_than_its_share(clock):
    switch = capped_switch(clock, Limits(max_connections_per_host=3, block_seconds=0))
    for sport in range(40000, 40010):
        syn(switch, 1, sport)
    assert len(switch.gateway.state.conns) == 3
    assert switch.gateway.counters["refused_per_host_cap"] == 7
    Peers(switch, 2).start()  # another host is not held back
    assert len(switch.gateway.sessions()) == 4


def test_a_host_past_its_cap_has_its_syns_dropped_in_the_switch_for_a_while(clock):
    switch = capped_switch(clock, Limits(max_connections_per_host=3, block_seconds=5))
    gateway = switch.gateway
    answered = Peers(switch, 1)
    answered.start()
    for sport in range(40000, 40010):
        syn(switch, 1, sport)
    assert len(gateway.state.conns) == 3
    assert gateway.counters["refused_per_host_cap"] == 1  # then the switch drops them
    assert gateway.counters["hosts_blocked"] == 1
    assert list(gateway.status()["blocked_hosts"]) == [str(CLIENTS[1].ip)]
    assert len([f for f in switch.table.flows() if f.priority == 1050]) == 1
    (echo,) = answered.from_client(pptp.EchoRequest(identifier=1))  # tracked: above it
    assert pptp.parse(tcp_of(echo)[1].payload) == pptp.EchoRequest(identifier=1)
    Peers(switch, 2).start()  # another host is not held back
    clock.now += 4
    switch.apply(gateway.tick())
    syn(switch, 1, 41000)
    assert gateway.counters["refused_per_host_cap"] == 1
    clock.now += 1
    switch.apply(gateway.tick())  # lifted: the next SYN reaches the controller again
    assert gateway.status()["blocked_hosts"] == {}
    assert not [f for f in switch.table.flows() if f.priority == 1050]
    syn(switch, 1, 41001)
    assert gateway.counters["refused_per_host_cap"] == 2
    assert gateway.counters["hosts_blocked"] == 2


def test_a_full_table_drops_the_oldest_unanswered_connection_never_an_answered_one(clock):
    switch = capped_switch(clock, Limits(max_connections=3))
    answered = Peers(switch, 2)  # the server answered this one
    answered.start()
    syn(switch, 1, 40000)
    syn(switch, 1, 40001)
    syn(switch, 1, 40002)  # table full: the oldest unanswered (40000) makes room
    ports = {int(row["client"].split(":")[1]) for row in switch.gateway.sessions()}
    assert ports == {40001, 40002, answered.client.port}
    assert switch.gateway.counters["unanswered_early_drops"] == 1
    Peers(switch, 4).start()  # room is made again, from the unanswered
    assert answered.client.port in {int(r["client"].split(":")[1])
                                    for r in switch.gateway.sessions()}


def test_with_every_connection_answered_a_new_syn_is_refused(clock):
    switch = capped_switch(clock, Limits(max_connections=2))
    Peers(switch, 1).start()
    Peers(switch, 2).start()
    assert syn(switch, 4, 40000) == []
    assert switch.gateway.counters["refused_connection_cap"] == 1
    assert len(switch.gateway.sessions()) == 2


def test_unanswered_connections_go_after_their_short_timeout(clock):
    switch = capped_switch(clock, Limits())
    syn(switch, 1, 40000)
    answered = Peers(switch, 2)
    switch.tick(clock, TIMEOUTS.unanswered - 1)
    assert len(switch.gateway.sessions()) == 2
    switch.tick(clock, 1)
    assert [row["client"] for row in switch.gateway.sessions()] == [
        f"{CLIENTS[2].ip}:{answered.client.port}"]
    assert switch.gateway.counters["unanswered_timeouts"] == 1


def test_a_flood_of_syns_from_one_host_leaves_the_table_bounded(clock):
    limits = Limits(max_connections=200, max_connections_per_host=50)
    switch = capped_switch(clock, limits)
    for sport in range(1024, 1024 + 5000):
        syn(switch, 1, sport)
    assert len(switch.gateway.state.conns) == 50
    legit = Peers(switch, 2)
    legit.start()
    legit.call(7, 0x80)
    (call,) = next(r for r in switch.gateway.sessions()
                   if r["client"].startswith(str(CLIENTS[2].ip)))["calls"]
    assert call["state"] == "established"


def test_syn_to_an_inside_host_through_the_gateway_is_not_natted_back_inside(clock):
    switch = capped_switch(clock, Limits())
    inside_peer = Host("02:00:00:00:00:12", IPv4Address("10.0.0.12"), GW_MAC)
    client = TcpEnd(CLIENTS[1], 40000, inside_peer.ip, 1723, 1000)
    assert switch.send(1, client.segment(fr.TCP_SYN)) == []
    assert switch.gateway.counters["tcp_hairpin"] == 1
    assert switch.gateway.sessions() == []


def test_an_inbound_connection_that_would_look_like_an_outbound_one_is_refused(clock):
    """The forward's inside server has its own outbound connection from port 1723 to an
    outside host's port 1723; that host then calls the forward from port 1723: NATed,
    both would be the same inside 4-tuple. The gateway refuses the second rather than
    let one connection shadow the other in its indexes."""
    switch = capped_switch(clock, Limits(), forward_config())
    switch.send(1, INSIDE_SERVER.arp_request(IPv4Address("10.0.0.1")))
    switch.send(OUTSIDE, PEER.arp_request(PUBLIC))
    own = TcpEnd(INSIDE_SERVER, 1723, PEER.ip, 1723, 3000)
    (out,) = switch.send(1, own.segment(fr.TCP_SYN))
    assert tcp_of(out)[0].src != PUBLIC  # the pool keeps the forwarded address for last
    caller = TcpEnd(PEER, 1723, PUBLIC, 1723, 7000)
    assert switch.send(OUTSIDE, caller.segment(fr.TCP_SYN)) == []
    assert switch.gateway.counters["connection_key_conflict"] == 1
    assert [row["direction"] for row in switch.gateway.sessions()] == ["outbound"]


def test_no_free_public_port_is_a_counted_refusal_with_a_reset(clock):
    switch = capped_switch(clock, Limits())
    gateway = switch.gateway
    gateway.pool = AddressPool(gateway.state, gateway.config.public_addresses,
                               ports=(2000, 2001))  # a port space of two
    for port in (1, 2, 4):  # the same source port: the first keeps it, two take the range
        syn(switch, port, 40000)
    assert len(gateway.state.conns) == 3
    (reset,) = syn(switch, 1, 40000, Host("02:00:00:00:00:14", IPv4Address("10.0.0.14"),
                                           GW_MAC))
    ip, tcp = tcp_of(reset)
    assert (reset.port, ip.src, ip.dst, tcp.flags) == (
        1, SERVER_IP, IPv4Address("10.0.0.14"), fr.TCP_RST | fr.TCP_ACK)
    assert tcp.ack == 1001
    assert gateway.counters["public_ports_exhausted"] == 1
    assert len(gateway.state.conns) == 3


def test_a_request_reordered_behind_the_fin_creates_no_call(clock):
    switch = capped_switch(clock, Limits())
    peers = Peers(switch, 1)
    peers.start()
    request = pptp.build(pptp.OutgoingCallRequest(call_id=7))
    start = peers.client.seq
    peers.client.seq = (start + len(request)) % 2**32
    switch.send(1, peers.client.segment(fr.TCP_FIN | fr.TCP_ACK))  # the FIN overtakes it
    peers.client.seq = start
    switch.send(1, peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, request))
    assert switch.gateway.state.calls == {} and switch.gre_flows() == []
    assert switch.gateway.sessions()[0]["errors"] == {"call_after_close": 1}


def test_a_request_reusing_a_live_call_id_leaves_that_call_alone(clock):
    switch = capped_switch(clock, Limits())
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    first.call(7, 0x80)
    second.call(7, 0x100)  # translated
    (again,) = second.from_client(pptp.OutgoingCallRequest(call_id=7))
    translated = pptp.parse(tcp_of(again)[1].payload).call_id
    assert translated != 7  # keeps the live call's mapping
    (clear,) = second.from_client(pptp.CallClearRequest(call_id=7))
    assert pptp.parse(tcp_of(clear)[1].payload).call_id == translated
    assert switch.gateway.state.idx.pending_ids == {}


def test_calls_past_the_caps_are_counted_and_get_no_flows(clock):
    switch = capped_switch(clock, Limits(max_calls_per_connection=2, max_calls=3))
    peers = Peers(switch, 1)
    peers.start()
    for call_id in (1, 2, 3):
        peers.call(call_id, 0x80 + call_id)
    row = switch.gateway.sessions()[0]
    assert [c["client_call_id"] for c in row["calls"]] == [1, 2]
    assert row["errors"]["call_cap"] == 1
    other = Peers(switch, 2)
    other.start()
    other.call(9, 0x90)
    other.call(10, 0x91)  # the third call in all: past max_calls
    assert len(switch.gateway.state.calls) == 3


def test_syn_to_the_gateways_own_public_address_from_inside_is_not_natted(clock):
    """Found by the fuzzer: it went out NATed, to the gateway's own address."""
    switch = capped_switch(clock, Limits())
    client = TcpEnd(CLIENTS[1], 40000, PUBLIC, 1723, 1000)
    assert switch.send(1, client.segment(fr.TCP_SYN)) == []
    assert switch.gateway.counters["tcp_hairpin"] == 1 and switch.gateway.sessions() == []


def test_data_before_the_servers_answer_keeps_the_connection_unanswered(clock):
    """Found by the fuzzer: a request before the SYN-ACK moved the state on and the
    unanswered index lost the connection (the fake switch's index check caught it)."""
    switch = capped_switch(clock, Limits())
    client = TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000)
    switch.send(1, client.segment(fr.TCP_SYN))
    switch.send(1, client.message(pptp.StartControlConnectionRequest()))
    assert list(switch.gateway.state.idx.unanswered) == [1]
    switch.tick(clock, TIMEOUTS.unanswered)
    assert switch.gateway.sessions() == []
