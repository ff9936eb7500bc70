"""Outbound PPTP through the gateway, on the fake switch: NAT, tracking, GRE flows."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp

from ryu_pptp_alg import pairs, pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import Timeouts, config_from_dict
from ryu_pptp_alg.flowtable import FlowEntry
from tests.unit.fakeswitch import FakeSwitch, Host, TcpEnd, tcp_of

GW_MAC = "0e:00:00:00:00:01"
PUBLIC = IPv4Address("203.0.113.1")
PUBLIC2 = IPv4Address("203.0.113.2")
SERVER_IP = IPv4Address("198.51.100.10")
OUTSIDE = 3
SERVER = Host("02:00:00:00:00:99", SERVER_IP, GW_MAC)
CLIENTS = {1: Host("02:00:00:00:00:11", IPv4Address("10.0.0.11"), GW_MAC),
           2: Host("02:00:00:00:00:12", IPv4Address("10.0.0.12"), GW_MAC),
           4: Host("02:00:00:00:00:13", IPv4Address("10.0.0.13"), GW_MAC)}
TIMEOUTS = Timeouts(gre_idle=60, control_idle=120, closing_linger=5, stats_interval=10)


def gateway_config(publics=(PUBLIC,)):
    return config_from_dict({"gateways": [{
        "dpid": 1, "inside_ports": [1, 2, 4], "outside_ports": [OUTSIDE],
        "inside_address": "10.0.0.1/24", "public_addresses": [str(p) for p in publics],
    }]}).gateways[0]


@pytest.fixture
def switch(clock):
    sw = FakeSwitch.create(gateway_config(), clock, TIMEOUTS)
    sw.send(OUTSIDE, SERVER.arp_request(PUBLIC))  # the gateway learns the server
    return sw


class Peers:
    """A scripted PPTP client (inside) and server (outside) on one control connection."""

    def __init__(self, switch: FakeSwitch, port: int, sport: int = 40000,
                 client_isn: int = 1000, server_isn: int = 5000) -> None:
        self.switch = switch
        self.port = port
        self.client = TcpEnd(CLIENTS[port], sport, SERVER_IP, 1723, client_isn)
        (syn,) = switch.send(port, self.client.segment(fr.TCP_SYN))
        ip, tcp = tcp_of(syn)
        self.public = (ip.src, tcp.src_port)
        self.server = TcpEnd(SERVER, 1723, ip.src, tcp.src_port, server_isn, tcp.seq + 1)
        (synack,) = switch.send(OUTSIDE, self.server.segment(fr.TCP_SYN | fr.TCP_ACK))
        self.client.ack = tcp_of(synack)[1].seq + 1

    def from_client(self, msg: pptp.Message):
        return self.switch.send(self.port, self.client.message(msg))

    def from_server(self, msg: pptp.Message):
        return self.switch.send(OUTSIDE, self.server.message(msg))

    def start(self) -> None:
        self.from_client(pptp.StartControlConnectionRequest())
        self.from_server(pptp.StartControlConnectionReply())

    def call(self, call_id: int, server_call_id: int) -> None:
        """Place a call; the server answers the call ID it saw (translated or not)."""
        (request,) = self.from_client(pptp.OutgoingCallRequest(call_id=call_id))
        seen_id = pptp.parse(tcp_of(request)[1].payload).call_id
        self.from_server(pptp.OutgoingCallReply(call_id=server_call_id, peer_call_id=seen_id))


def only_session(switch):
    (row,) = switch.gateway.sessions()
    return row


# --- ARP -----------------------------------------------------------------------------------

def test_gateway_answers_arp_for_its_addresses_on_the_right_side(switch):
    client = CLIENTS[1]
    (reply,) = switch.send(1, client.arp_request(IPv4Address("10.0.0.1")))
    assert reply.port == 1
    arp = fr.parse_arp(fr.parse_ethernet(reply.frame).payload)
    assert (arp.op, arp.sender_mac, str(arp.sender_ip)) == (fr.ARP_REPLY, GW_MAC, "10.0.0.1")
    assert switch.send(1, client.arp_request(PUBLIC)) == []  # public address not inside
    (reply,) = switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    assert reply.port == OUTSIDE


def test_unknown_next_hop_is_resolved_and_the_packet_released(clock):
    switch = FakeSwitch.create(gateway_config(), clock, TIMEOUTS)
    end = TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000)
    (request,) = switch.send(1, end.segment(fr.TCP_SYN))
    arp = fr.parse_arp(fr.parse_ethernet(request.frame).payload)
    assert (request.port, arp.op, arp.target_ip, arp.sender_ip) == (OUTSIDE, fr.ARP_REQUEST,
                                                                     SERVER_IP, PUBLIC)
    (syn,) = switch.send(OUTSIDE, SERVER.arp_reply(PUBLIC))
    assert syn.port == OUTSIDE and syn.fields["eth_dst"] == SERVER.mac


def test_unanswered_arp_is_retried_then_the_packet_dropped_and_counted(clock):
    switch = FakeSwitch.create(gateway_config(), clock, TIMEOUTS)
    switch.send(1, TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000).segment(fr.TCP_SYN))
    sent_before = len(switch.wire)
    switch.tick(clock, TIMEOUTS.arp_retry)
    assert len(switch.wire) == sent_before + 1  # retried
    switch.tick(clock, TIMEOUTS.arp_give_up)
    assert switch.gateway.status()["counters"]["arp_unresolved_drops"] == 1


# --- control connection NAT ----------------------------------------------------------------

def test_control_connection_is_natted_both_ways(switch):
    client = TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000)
    (syn,) = switch.send(1, client.segment(fr.TCP_SYN))
    ip, tcp = tcp_of(syn)  # checksums verified by the parser
    assert (syn.port, ip.src, ip.dst, tcp.src_port, ip.ttl) == (OUTSIDE, PUBLIC, SERVER_IP,
                                                                40000, 63)
    assert syn.fields["eth_src"] == GW_MAC and syn.fields["eth_dst"] == SERVER.mac
    server = TcpEnd(SERVER, 1723, PUBLIC, 40000, 5000, tcp.seq + 1)
    (synack,) = switch.send(OUTSIDE, server.segment(fr.TCP_SYN | fr.TCP_ACK))
    ip, tcp = tcp_of(synack)
    assert (synack.port, ip.dst, tcp.dst_port) == (1, CLIENTS[1].ip, 40000)
    assert synack.fields["eth_dst"] == CLIENTS[1].mac
    row = only_session(switch)
    assert (row["client"], row["public"], row["server"], row["state"]) == (
        "10.0.0.11:40000", "203.0.113.1:40000", "198.51.100.10:1723", "connecting")


def test_colliding_source_port_is_remapped(switch):
    first = Peers(switch, 1, sport=40000)
    second = Peers(switch, 2, sport=40000)
    assert first.public == (PUBLIC, 40000)
    assert second.public[0] == PUBLIC and second.public[1] != 40000


def test_pool_gives_each_client_its_own_address_towards_a_server(clock):
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    first, second = Peers(switch, 1), Peers(switch, 2)
    again = Peers(switch, 1, sport=40001)
    assert (first.public[0], second.public[0], again.public[0]) == (PUBLIC, PUBLIC2, PUBLIC)


def test_segment_without_session_is_dropped_and_counted(switch):
    stray = TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000)
    assert switch.send(1, stray.segment(fr.TCP_ACK, b"x")) == []
    assert switch.gateway.counters["tcp_no_session"] == 1


# --- calls and GRE flows -------------------------------------------------------------------

def test_established_call_gets_fast_path_gre_flows(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(call_id=0x1234, server_call_id=0x80)
    (row,) = switch.gateway.sessions()
    assert row["state"] == "established"
    (call,) = row["calls"]
    assert call == {**call, "client_call_id": 0x1234, "public_call_id": 0x1234,
                    "server_call_id": 0x80, "state": "established", "path": "fast"}
    client = CLIENTS[1]
    (out,) = switch.send(1, client.gre(SERVER_IP, 0x80))
    assert not out.via_controller
    assert (out.port, out.fields["ipv4_src"], out.fields["ipv4_dst"]) == (
        OUTSIDE, str(PUBLIC), str(SERVER_IP))
    assert (out.fields["eth_src"], out.fields["eth_dst"], out.fields["ip_ttl"]) == (
        GW_MAC, SERVER.mac, 63)
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 0x1234))
    assert not back.via_controller
    assert (back.port, back.fields["ipv4_dst"], back.fields["eth_dst"]) == (
        1, str(client.ip), client.mac)
    cookies = {f.cookie for f in switch.gre_flows()}
    assert len(cookies) == 1
    assert pipeline.decode_cookie(cookies.pop()).kind == pipeline.CookieKind.GRE_PAIR


def test_reply_is_held_until_the_flows_are_confirmed(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    switch.hold_barriers = True
    assert peers.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7)) == []
    assert [f.priority for f in switch.gre_flows()] == [3000, 3000]  # flows first
    echo = peers.from_server(pptp.EchoRequest(identifier=1))
    assert echo == []  # stays in order behind the held reply
    before = len(switch.wire)
    switch.release_barriers()
    released = switch.wire[before:]
    assert [pptp.peek_type(tcp_of(s)[1].payload) for s in released] == [
        pptp.ControlMessageType.OUTGOING_CALL_REPLY, pptp.ControlMessageType.ECHO_REQUEST]


def test_early_server_gre_goes_through_the_controller_not_dropped(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    (early,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert early.via_controller and early.port == 1
    assert early.fields["ipv4_dst"] == str(CLIENTS[1].ip)
    assert only_session(switch)["calls"][0]["path"] == "slow"
    assert only_session(switch)["calls"][0]["packets"] == 1


def test_failed_call_leaves_no_flows(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    assert len(switch.gre_flows()) == 1  # the pending flow
    peers.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7, result_code=2))
    assert switch.gre_flows() == []
    assert only_session(switch)["calls"] == []


@pytest.mark.parametrize("teardown", [
    lambda p: (p.from_client(pptp.CallClearRequest(call_id=7)),
               p.from_server(pptp.CallDisconnectNotify(call_id=0x80))),
    lambda p: p.from_server(pptp.CallDisconnectNotify(call_id=0x80)),
    lambda p: p.from_client(pptp.StopControlConnectionRequest()),
    lambda p: p.from_server(pptp.StopControlConnectionRequest()),
    lambda p: p.switch.send(p.port, p.client.segment(fr.TCP_FIN | fr.TCP_ACK)),
    lambda p: p.switch.send(OUTSIDE, p.server.segment(fr.TCP_RST)),
], ids=["clear+disconnect", "disconnect", "stop-by-client", "stop-by-server", "fin", "rst"])
def test_teardown_removes_the_call_and_its_flows(switch, teardown):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    assert len(switch.gre_flows()) == 2
    teardown(peers)
    assert switch.gre_flows() == []
    assert only_session(switch)["calls"] == []


def test_flows_are_shared_by_calls_of_one_pair_and_live_until_the_last_ends(switch):
    first, second = Peers(switch, 1, sport=40000), Peers(switch, 1, sport=40001)
    for peers, call_id, server_id in ((first, 7, 0x80), (second, 8, 0x100)):
        peers.start()
        peers.call(call_id, server_id)
    assert len(switch.gre_flows()) == 2
    first.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    assert len(switch.gre_flows()) == 2
    second.from_server(pptp.CallDisconnectNotify(call_id=0x100))
    assert switch.gre_flows() == []


def test_closing_connection_is_forgotten_after_the_linger(switch, clock):
    peers = Peers(switch, 1)
    switch.send(1, peers.client.segment(fr.TCP_FIN | fr.TCP_ACK))
    (fin,) = switch.send(OUTSIDE, peers.server.segment(fr.TCP_FIN | fr.TCP_ACK))
    assert fin.port == 1  # the close handshake still passes
    assert only_session(switch)["state"] == "closing"
    switch.tick(clock, TIMEOUTS.closing_linger)
    assert switch.gateway.sessions() == []


def test_idle_gre_flows_end_their_calls(switch, clock):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    switch.tick(clock, TIMEOUTS.gre_idle + 1)
    assert switch.gre_flows() == []
    assert only_session(switch)["calls"] == []
    assert switch.gateway.counters["gre_idle_timeouts"] == 1


def test_silent_control_connection_is_torn_down(switch, clock):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    for _ in range(3):  # GRE keeps the flows alive, but the control connection is silent
        switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
        switch.tick(clock, TIMEOUTS.control_idle / 3)
    assert switch.gateway.sessions() == []
    assert switch.gre_flows() == []


def test_flow_stats_feed_the_session_counters(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    (pair,) = switch.gateway.state.pairs.values()
    cookie = pairs.pair_cookie(pair)
    switch.gateway.flow_stats([
        FlowEntry(1, 3000, cookie, (("ipv4_src", str(CLIENTS[1].ip)),), b"", 0, 10, 1000),
        FlowEntry(1, 3000, cookie, (("ipv4_src", str(SERVER_IP)),), b"", 0, 5, 700),
        FlowEntry(1, 3000, 0x77, (), b"", 0, 99, 99)])
    (call,) = only_session(switch)["calls"]
    assert (call["packets"], call["bytes"]) == (15, 1700)


def test_stats_are_requested_periodically_while_pairs_exist(switch, clock):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    clock.now += TIMEOUTS.stats_interval
    (request,) = [m for m in switch.gateway.tick() if type(m).__name__ == "OFPFlowStatsRequest"]
    assert request.table_id == pipeline.TABLE_GRE
    assert (request.cookie, request.cookie_mask) == (pipeline.COOKIE_TAG, pipeline.COOKIE_TAG_MASK)


def test_reconnect_reinstalls_live_pairs(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    switch.gateway.datapath_down()
    switch.table = type(switch.table)()  # a switch that forgot everything
    switch.apply(switch.gateway.datapath_up())
    (out,) = switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
    assert out.fields["ipv4_src"] == str(PUBLIC)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("mangle,counter", [
    (lambda f: f[:20], "bad_frame"),
    (lambda f: f[:-1] + bytes([f[-1] ^ 0xFF]), "bad_frame"),  # TCP checksum
])
def test_malformed_frames_are_counted_and_the_session_survives(switch, mangle, counter):
    peers = Peers(switch, 1)
    peers.start()
    frame = peers.client.message(pptp.EchoRequest(identifier=3))
    assert switch.gateway.packet_in(1, mangle(frame), 0) == []
    assert switch.gateway.counters[counter] == 1
    assert only_session(switch)["state"] == "established"


def test_garbage_in_the_control_stream_is_counted_and_nat_goes_on(switch):
    peers = Peers(switch, 1)
    peers.start()
    (out,) = switch.send(1, peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, b"\x00\x10garbage!"))
    assert out.port == OUTSIDE  # still forwarded
    assert only_session(switch)["errors"] == {"stream_desync": 1}


def test_gre_from_a_stranger_is_dropped_in_the_switch(switch):
    stranger = Host("02:00:00:00:00:66", IPv4Address("192.0.2.66"), GW_MAC)
    assert switch.send(OUTSIDE, stranger.gre(PUBLIC, 1)) == []
    (unmatched,) = [f for f in switch.table.flows(1) if f.priority == 0]
    assert unmatched.packet_count == 1


def test_ttl_expiry_is_counted(switch):
    frame = CLIENTS[1].tcp(SERVER_IP, 40000, 1723, 1000, 0, fr.TCP_SYN)
    ip = fr.parse_ipv4(fr.parse_ethernet(frame).payload)
    low_ttl = CLIENTS[1].ipv4(SERVER_IP, 6, ip.payload, ttl=1)
    assert switch.send(1, low_ttl) == []
    assert switch.gateway.counters["ttl_expired"] == 1


def test_flow_removed_for_a_deleted_pair_is_harmless(switch):
    assert switch.gateway.flow_removed(pipeline.cookie(pipeline.CookieKind.GRE_PAIR, 99),
                                       ofp.OFPRR_DELETE, 1, 1) == []


def test_outside_next_hop_carries_control_and_gre(clock):
    router = Host("02:00:00:00:00:fe", IPv4Address("203.0.113.254"), GW_MAC)
    config = config_from_dict({"gateways": [{
        "dpid": 1, "inside_ports": [1, 2], "outside_ports": [OUTSIDE],
        "inside_address": "10.0.0.1/24", "public_addresses": [str(PUBLIC)],
        "outside_next_hop": str(router.ip)}]}).gateways[0]
    switch = FakeSwitch.create(config, clock, TIMEOUTS)
    end = TcpEnd(CLIENTS[1], 40000, SERVER_IP, 1723, 1000)
    (request,) = switch.send(1, end.segment(fr.TCP_SYN))
    assert fr.parse_arp(fr.parse_ethernet(request.frame).payload).target_ip == router.ip
    (syn,) = switch.send(OUTSIDE, router.arp_reply(PUBLIC))
    assert syn.fields["eth_dst"] == router.mac and syn.fields["ipv4_dst"] == str(SERVER_IP)
    # The server is behind the router: its packets arrive with the router's MAC.
    via_router = Host(router.mac, SERVER_IP, GW_MAC)
    server = TcpEnd(via_router, 1723, PUBLIC, 40000, 5000, 1001)
    (synack,) = switch.send(OUTSIDE, server.segment(fr.TCP_SYN | fr.TCP_ACK))
    assert synack.port == 1
    end.ack = 5001
    peers_msgs = [(1, end, pptp.StartControlConnectionRequest()),
                  (OUTSIDE, server, pptp.StartControlConnectionReply()),
                  (1, end, pptp.OutgoingCallRequest(call_id=9)),
                  (OUTSIDE, server, pptp.OutgoingCallReply(call_id=0x80, peer_call_id=9))]
    for port, sender, msg in peers_msgs:
        switch.send(port, sender.message(msg))
    (out,) = switch.send(1, CLIENTS[1].gre(SERVER_IP, 0x80))
    assert (out.fields["eth_dst"], out.fields["ipv4_src"]) == (router.mac, str(PUBLIC))


def test_closed_calls_do_not_pile_up_on_a_long_lived_connection(switch):
    """A busy client places call after call on one control connection for days: the
    controller keeps only the live ones."""
    peers = Peers(switch, 1)
    peers.start()
    for call_id in range(1, 41):
        peers.call(call_id=call_id, server_call_id=0x100 + call_id)
        peers.from_client(pptp.CallClearRequest(call_id=call_id))
        peers.from_server(pptp.CallDisconnectNotify(call_id=0x100 + call_id))
    peers.call(call_id=99, server_call_id=0x199)
    state = switch.gateway.state
    assert [call.client_call_id for call in state.calls.values()] == [99]
    assert len(state.idx.inward) == 1 and len(state.pairs) == 1
    assert [c["client_call_id"] for c in only_session(switch)["calls"]] == [99]


@pytest.mark.parametrize("mangle", [
    lambda m: m[:8] + (99).to_bytes(2, "big") + m[10:],  # unknown message type
    lambda m: m[:10] + b"\x00\x01" + m[12:],  # reserved field not zero
])
def test_a_message_that_frames_but_does_not_parse_is_counted_and_forwarded(switch, mangle):
    """Both builds (make test runs the unit suite compiled and from the sources): once the
    compiled gateway let a TypeError out here, and the segment was lost."""
    peers = Peers(switch, 1)
    peers.start()
    bad = mangle(pptp.build(pptp.StartControlConnectionRequest()))
    (out,) = switch.send(1, peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, bad))
    assert tcp_of(out)[1].payload == bad
    assert only_session(switch)["errors"] == {"bad_message": 1}
    peers.call(7, 0x80)  # tracking goes on
    assert only_session(switch)["calls"][0]["state"] == "established"
