"""Inbound PPTP: a server inside, reached through a port forward, on the fake switch."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import PortForward, config_from_dict
from tests.unit.fakeswitch import FakeSwitch, Host, TcpEnd, tcp_of
from tests.unit.test_outbound import GW_MAC, OUTSIDE, PUBLIC, PUBLIC2, TIMEOUTS, Peers

SERVER = Host("02:00:00:00:00:10", IPv4Address("10.0.0.10"), GW_MAC)  # inside, port 1
PEER = Host("02:00:00:00:00:20", IPv4Address("192.0.2.20"), GW_MAC)  # outside
SERVER_PORT = 1


def forward_config():
    return config_from_dict({"gateways": [{
        "dpid": 1, "inside_ports": [1, 2], "outside_ports": [OUTSIDE],
        "inside_address": "10.0.0.1/24", "public_addresses": [str(PUBLIC), str(PUBLIC2)],
        "port_forwards": [{"public": str(PUBLIC), "inside": str(SERVER.ip)}]}]}).gateways[0]


def forward_switch(clock, config=None) -> FakeSwitch:
    sw = FakeSwitch.create(config or forward_config(), clock, TIMEOUTS)
    sw.send(SERVER_PORT, SERVER.arp_request(IPv4Address("10.0.0.1")))  # learn the server
    sw.send(OUTSIDE, PEER.arp_request(PUBLIC))  # learn the peer
    return sw


@pytest.fixture
def switch(clock):
    return forward_switch(clock)


class Inbound:
    """A scripted outside client (PNS) and the inside server (PAC) behind the forward."""

    def __init__(self, switch: FakeSwitch, sport: int = 50000, peer: Host = PEER) -> None:
        self.switch = switch
        self.peer = TcpEnd(peer, sport, PUBLIC, 1723, 7000)
        (syn,) = switch.send(OUTSIDE, self.peer.segment(fr.TCP_SYN))
        ip, tcp = tcp_of(syn)
        assert (syn.port, ip.src, ip.dst, tcp.dst_port) == (SERVER_PORT, peer.ip, SERVER.ip, 1723)
        self.server = TcpEnd(SERVER, 1723, peer.ip, sport, 9000, tcp.seq + 1)
        (synack,) = switch.send(SERVER_PORT, self.server.segment(fr.TCP_SYN | fr.TCP_ACK))
        ip, tcp = tcp_of(synack)
        assert (synack.port, ip.src, tcp.src_port, ip.dst) == (OUTSIDE, PUBLIC, 1723, peer.ip)
        self.peer.ack = tcp.seq + 1

    def from_peer(self, msg: pptp.Message):
        return self.switch.send(OUTSIDE, self.peer.message(msg))

    def from_server(self, msg: pptp.Message):
        return self.switch.send(SERVER_PORT, self.server.message(msg))

    def start(self) -> None:
        self.from_peer(pptp.StartControlConnectionRequest())
        self.from_server(pptp.StartControlConnectionReply())


def only_call(switch):
    (session,) = switch.gateway.sessions()
    (call,) = session["calls"]
    return session, call


def test_outgoing_call_in_through_the_forward_gets_fast_gre(switch):
    link = Inbound(switch)
    link.start()
    link.from_peer(pptp.OutgoingCallRequest(call_id=0x31))
    link.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=0x31))
    session, call = only_call(switch)
    assert (session["direction"], session["client"], session["public"], session["server"]) == (
        "inbound", "192.0.2.20:50000", "203.0.113.1:1723", "10.0.0.10:1723")
    assert (call["client_call_id"], call["server_call_id"], call["path"]) == (0x31, 0x80, "fast")
    (inward,) = switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x80))
    assert not inward.via_controller
    assert (inward.port, inward.fields["ipv4_dst"], inward.fields["eth_dst"]) == (
        SERVER_PORT, str(SERVER.ip), SERVER.mac)
    (outward,) = switch.send(SERVER_PORT, SERVER.gre(PEER.ip, 0x31))
    assert not outward.via_controller
    assert (outward.port, outward.fields["ipv4_src"], outward.fields["eth_dst"]) == (
        OUTSIDE, str(PUBLIC), PEER.mac)


def test_incoming_call_from_the_server_out_to_the_client(switch):
    link = Inbound(switch)
    link.start()
    link.from_server(pptp.IncomingCallRequest(call_id=0x90))
    link.from_peer(pptp.IncomingCallReply(call_id=0x41, peer_call_id=0x90))
    switch.hold_barriers = True
    assert link.from_server(pptp.IncomingCallConnected(peer_call_id=0x41)) == []  # held
    switch.release_barriers()
    _, call = only_call(switch)
    assert (call["client_call_id"], call["server_call_id"], call["state"], call["path"]) == (
        0x41, 0x90, "established", "fast")
    (inward,) = switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x90))
    assert inward.fields["ipv4_dst"] == str(SERVER.ip)


def test_early_gre_from_the_client_reaches_the_server_via_the_controller(switch):
    link = Inbound(switch)
    link.start()
    link.from_server(pptp.IncomingCallRequest(call_id=0x90))
    link.from_peer(pptp.IncomingCallReply(call_id=0x41, peer_call_id=0x90))
    (early,) = switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x90))
    assert early.via_controller and early.port == SERVER_PORT
    assert early.fields["ipv4_dst"] == str(SERVER.ip)


def test_two_clients_behind_one_remote_nat_share_the_pair(switch):
    first, second = Inbound(switch, sport=50000), Inbound(switch, sport=50001)
    for link, call_id, server_id in ((first, 0x31, 0x80), (second, 0x31, 0x100)):
        link.start()
        link.from_peer(pptp.OutgoingCallRequest(call_id=call_id))
        link.from_server(pptp.OutgoingCallReply(call_id=server_id, peer_call_id=call_id))
    calls = [c for s in switch.gateway.sessions() for c in s["calls"]]
    assert [(c["server_call_id"], c["path"]) for c in calls] == [(0x80, "fast"), (0x100, "fast")]
    assert len(switch.gre_flows()) == 2  # one pair: peer <-> server
    first.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    assert len(switch.gre_flows()) == 2
    second.from_server(pptp.CallDisconnectNotify(call_id=0x100))
    assert switch.gre_flows() == []


def test_gre_without_a_call_never_reaches_the_server(switch):
    stranger = Host("02:00:00:00:00:66", IPv4Address("198.51.100.66"), GW_MAC)
    link = Inbound(switch)
    link.start()
    assert switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x80)) == []  # the peer, but no call yet
    link.from_peer(pptp.OutgoingCallRequest(call_id=0x31))
    link.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=0x31))
    assert switch.send(OUTSIDE, stranger.gre(PUBLIC, 0x80)) == []
    (unmatched,) = [f for f in switch.table.flows(1) if f.priority == 0]
    assert unmatched.packet_count == 2


def test_pptp_to_an_unforwarded_public_address_is_dropped(switch):
    end = TcpEnd(PEER, 50000, PUBLIC2, 1723, 7000)
    assert switch.send(OUTSIDE, end.segment(fr.TCP_SYN)) == []
    assert switch.gateway.counters["tcp_no_session"] == 1


def test_removing_the_forward_tears_its_sessions_down(switch):
    link = Inbound(switch)
    link.start()
    link.from_peer(pptp.OutgoingCallRequest(call_id=0x31))
    link.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=0x31))
    switch.apply(switch.gateway.remove_forward(PUBLIC))
    assert switch.gateway.sessions() == [] and switch.gre_flows() == []
    assert link.from_peer(pptp.EchoRequest()) == []
    assert switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x80)) == []


def test_forward_added_at_run_time_takes_new_connections(switch):
    switch.gateway.add_forward(PortForward(PUBLIC2, IPv4Address("10.0.0.10")))
    end = TcpEnd(PEER, 50000, PUBLIC2, 1723, 7000)
    (syn,) = switch.send(OUTSIDE, end.segment(fr.TCP_SYN))
    assert syn.port == SERVER_PORT and syn.fields["ipv4_dst"] == "10.0.0.10"
    with pytest.raises(ValueError, match="already forwarded"):
        switch.gateway.add_forward(PortForward(PUBLIC2, IPv4Address("10.0.0.11")))


def test_outbound_clients_avoid_forwarded_addresses(switch):
    from tests.unit.test_outbound import CLIENTS
    from tests.unit.test_outbound import SERVER as REMOTE

    switch.send(OUTSIDE, REMOTE.arp_request(PUBLIC2))
    peers = Peers(switch, 2)
    assert peers.public[0] == PUBLIC2
    assert CLIENTS[2].ip != SERVER.ip


def test_a_lan_source_arriving_from_outside_is_dropped(switch):
    spoof = Host("02:00:00:00:00:66", IPv4Address("10.0.0.77"), PEER.gateway_mac)
    client = TcpEnd(spoof, 50000, PUBLIC, 1723, 7000)
    assert switch.send(OUTSIDE, client.segment(fr.TCP_SYN)) == []
    assert switch.gateway.counters["spoofed_source"] == 1
    assert switch.gateway.sessions() == []


def test_a_second_gre_pair_between_the_same_two_hosts_is_refused_not_clobbered(switch):
    """Found by the fuzzer: the forward's server also calls out to the same outside host
    through another public address; outward GRE is matched by the two hosts alone, so the
    second pair's flow replaced the first's. The second call is refused instead."""
    link = Inbound(switch)
    link.start()
    link.from_peer(pptp.OutgoingCallRequest(call_id=0x31))
    link.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=0x31))
    out = TcpEnd(SERVER, 40000, PEER.ip, 1723, 100)
    (syn,) = switch.send(SERVER_PORT, out.segment(fr.TCP_SYN))
    ip, tcp = tcp_of(syn)
    assert ip.src == PUBLIC2
    back = TcpEnd(PEER, 1723, PUBLIC2, tcp.src_port, 900, tcp.seq + 1)
    switch.send(OUTSIDE, back.segment(fr.TCP_SYN | fr.TCP_ACK))
    switch.send(SERVER_PORT, out.message(pptp.OutgoingCallRequest(call_id=0x55)))
    assert switch.gateway.counters["gre_pair_conflict"] == 1
    paths = {s["direction"]: [c["path"] for c in s["calls"]] for s in switch.gateway.sessions()}
    assert paths == {"inbound": ["fast"], "outbound": ["refused"]}
    (outward,) = switch.send(SERVER_PORT, SERVER.gre(PEER.ip, 0x31))
    assert outward.fields["ipv4_src"] == str(PUBLIC)  # the first pair's flow stands
