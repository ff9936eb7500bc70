"""A controller restart at every point of a call's life, on the fake switch.

The old gateway's records go through the store (msgpack, as the file store keeps
them); a new gateway is built from them alone and connects to the switch, which
kept its flows. It must show the same session table, delete or re-add no flow of a
live call, and carry every call on to a clean end.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.records import SCHEMA
from ryu_pptp_alg.state import GatewayState
from tests.unit.fakeswitch import FakeClock, FakeSwitch, TcpEnd, tcp_of
from tests.unit.test_inbound import PEER, Inbound, forward_switch
from tests.unit.test_inbound import SERVER as INSIDE_SERVER
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


def outbound_switch(clock, publics=(PUBLIC,)) -> FakeSwitch:
    switch = FakeSwitch.create(gateway_config(publics), clock, TIMEOUTS)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return switch


def table(switch: FakeSwitch) -> list[dict]:
    """The session table, without what a restart restarts (the idle timers)."""
    return [{k: v for k, v in row.items() if k != "last_seen"}
            for row in switch.gateway.sessions()]


def gre_flow_mods(messages: list) -> list:
    return [m for m in messages if isinstance(m, parser.OFPFlowMod)
            and m.table_id in (pipeline.TABLE_GRE, ofp.OFPTT_ALL)]


def flow_set(switch: FakeSwitch) -> set:
    """The switch's flows, counters aside."""
    return {dataclasses.replace(e, packets=0, bytes=0) for e in switch.flow_entries()}


def restart(switch: FakeSwitch) -> None:
    """Restart the controller: the same table, and not one GRE flow touched."""
    before = table(switch)
    flows_before = sorted(str(f) for f in switch.table.flows())  # counters too: untouched
    switch.restart_controller()
    assert table(switch) == before
    assert gre_flow_mods(switch.messages) == []
    assert sorted(str(f) for f in switch.table.flows()) == flows_before
    restore = switch.gateway.last_restore
    assert restore is not None and restore["flows_added"] == restore["flows_deleted"] == 0


def retransmit(end: TcpEnd, msg: pptp.Message) -> bytes:
    """``msg`` sent again at the sequence number it first went with."""
    end.seq = (end.seq - len(pptp.build(msg))) % 2**32
    return end.message(msg)


def carries_gre(switch: FakeSwitch, port: int, client_id: int, server_id: int,
                public=PUBLIC) -> None:
    client = CLIENTS[port]
    (out,) = switch.send(port, client.gre(SERVER_IP, server_id))
    assert out.port == OUTSIDE and out.fields["ipv4_src"] == str(public)
    (back,) = switch.send(OUTSIDE, SERVER.gre(public, client_id))
    assert back.port == port


def hang_up(switch: FakeSwitch, peers: Peers, client_id: int, server_id: int) -> None:
    (clear,) = peers.from_client(pptp.CallClearRequest(call_id=client_id))
    seen = pptp.parse(tcp_of(clear)[1].payload)
    assert seen.call_id == peers_public_id(switch, peers, client_id)
    peers.from_server(pptp.CallDisconnectNotify(call_id=server_id))
    for end, port in ((peers.client, peers.port), (peers.server, OUTSIDE)):
        switch.send(port, end.segment(fr.TCP_FIN | fr.TCP_ACK))


def peers_public_id(switch: FakeSwitch, peers: Peers, client_id: int) -> int:
    for call in switch.gateway.state.calls.values():
        conn = switch.gateway.state.conns[call.conn]
        if conn.client_port == peers.client.port and call.client_call_id == client_id \
                and conn.client_ip == peers.client.host.ip:
            return call.public_call_id
    raise AssertionError(f"no call {client_id}")


def all_gone(switch: FakeSwitch, clock: FakeClock) -> None:
    switch.tick(clock, TIMEOUTS.closing_linger)
    state = switch.gateway.state
    assert (state.conns, state.calls, state.pairs) == ({}, {}, {})
    assert switch.gre_flows() == []


# --- every point of an outbound call's life --------------------------------------------------

def test_requested_call_is_answered_after_the_restart(clock):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    restart(switch)
    assert [f.priority for f in switch.gre_flows()] == [2000]  # early GRE: the controller
    peers.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7))
    (call,) = table(switch)[0]["calls"]
    assert (call["state"], call["path"]) == ("established", "fast")
    carries_gre(switch, 1, 7, 0x80)
    hang_up(switch, peers, 7, 0x80)
    all_gone(switch, clock)


def test_reply_held_for_a_barrier_is_retransmitted_to_the_new_controller(clock):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    switch.hold_barriers = True
    reply = pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7)
    assert peers.from_server(reply) == []  # the old controller dies holding it
    switch.hold_barriers = False
    restart(switch)
    (again,) = switch.send(OUTSIDE, retransmit(peers.server, reply))
    assert pptp.parse(tcp_of(again)[1].payload) == reply  # the client gets it now
    (call,) = table(switch)[0]["calls"]
    assert (call["state"], call["path"]) == ("established", "fast")
    carries_gre(switch, 1, 7, 0x80)
    hang_up(switch, peers, 7, 0x80)
    all_gone(switch, clock)


def test_clearing_call_ends_after_the_restart(clock):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    peers.from_client(pptp.CallClearRequest(call_id=7))
    restart(switch)
    assert table(switch)[0]["calls"][0]["state"] == "clearing"
    peers.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    assert table(switch)[0]["calls"] == [] and switch.gre_flows() == []


def test_shared_key_and_translated_id_stay_on_the_slow_path(clock):
    switch = outbound_switch(clock)
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
        peers.call(7, 0x80 if peers is first else 0x100)
    public2 = peers_public_id(switch, second, 7)
    assert public2 != 7
    restart(switch)
    assert {c["path"] for row in table(switch) for c in row["calls"]} == {"slow"}
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, public2))
    assert back.via_controller and back.port == 2  # the key's ID restored by the controller
    carries_gre(switch, 1, 7, 0x80)
    # The translation survives: the server hears the public ID, the client its own.
    hang_up(switch, second, 7, 0x100)
    assert {c["path"] for row in table(switch) for c in row["calls"]} == {"fast"}
    hang_up(switch, first, 7, 0x80)
    all_gone(switch, clock)


def test_retransmitted_translated_request_keeps_its_translation(clock):
    switch = outbound_switch(clock)
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    first.call(7, 0x80)
    request = pptp.OutgoingCallRequest(call_id=7)
    (seen,) = second.from_client(request)
    public2 = pptp.parse(tcp_of(seen)[1].payload).call_id
    restart(switch)
    (again,) = switch.send(2, retransmit(second.client, request))
    assert pptp.parse(tcp_of(again)[1].payload).call_id == public2


def test_pool_clients_keep_their_addresses_and_new_ones_get_free_ones(clock):
    switch = outbound_switch(clock, (PUBLIC, PUBLIC2))
    first = Peers(switch, 1)
    first.start()
    first.call(7, 0x80)
    restart(switch)
    second = Peers(switch, 2)
    assert (first.public[0], second.public[0]) == (PUBLIC, PUBLIC2)
    again = Peers(switch, 1, sport=40001)
    assert again.public[0] == PUBLIC  # a client keeps its address towards a server


# --- inbound ---------------------------------------------------------------------------------

def test_outgoing_call_in_through_a_forward_survives(clock):
    switch = forward_switch(clock)
    link = Inbound(switch)
    link.start()
    link.from_peer(pptp.OutgoingCallRequest(call_id=0x31))
    link.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=0x31))
    restart(switch)
    (inward,) = switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x80))
    assert not inward.via_controller and inward.fields["ipv4_dst"] == str(INSIDE_SERVER.ip)
    link.from_peer(pptp.CallClearRequest(call_id=0x31))
    link.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    assert switch.gre_flows() == []


def test_incoming_call_survives(clock):
    switch = forward_switch(clock)
    link = Inbound(switch)
    link.start()
    link.from_server(pptp.IncomingCallRequest(call_id=0x90))
    link.from_peer(pptp.IncomingCallReply(call_id=0x41, peer_call_id=0x90))
    restart(switch)  # requested: its early GRE goes through the controller
    (early,) = switch.send(OUTSIDE, PEER.gre(PUBLIC, 0x90))
    assert early.via_controller and early.port == 1
    link.from_server(pptp.IncomingCallConnected(peer_call_id=0x41))
    restart(switch)
    (call,) = table(switch)[0]["calls"]
    assert (call["state"], call["path"]) == ("established", "fast")


def test_forward_added_over_rest_survives(clock):
    switch = outbound_switch(clock, (PUBLIC, PUBLIC2))
    from ryu_pptp_alg.config import PortForward
    switch.gateway.add_forward(PortForward(PUBLIC2, IPv4Address("10.0.0.10")))
    switch.apply([])
    restart(switch)
    assert switch.gateway.forwards == {PUBLIC2: IPv4Address("10.0.0.10")}
    switch.gateway.remove_forward(PUBLIC2)
    switch.apply([])
    restart(switch)
    assert switch.gateway.forwards == {}


# --- the stream, picked up mid-way -----------------------------------------------------------

def test_a_lagging_stream_resynchronises_on_the_next_message(clock):
    """Segments forwarded after the last stored change (no message completed in them)
    leave the stored position behind: the next message start picks the stream up."""
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    request = pptp.build(pptp.OutgoingCallRequest(call_id=7))
    # Half a message forwarded; the stored position stays at its start.
    switch.send(1, peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, request[:20]))
    switch.restart_controller()
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))  # no pair yet names the server
    # The old controller had forwarded the rest too; the client moves on.
    peers.client.seq = (peers.client.seq + len(request) - 20) % 2**32
    (echo,) = peers.from_client(pptp.EchoRequest(identifier=5))
    assert pptp.parse(tcp_of(echo)[1].payload) == pptp.EchoRequest(identifier=5)
    assert switch.gateway.counters["streams_resynchronised"] == 1
    peers.call(9, 0x90)  # tracked again
    (call,) = table(switch)[0]["calls"]
    assert (call["client_call_id"], call["state"]) == (9, "established")


def test_a_stream_that_never_finds_a_message_is_reset_at_both_ends(clock):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    switch.restart_controller()
    peers.client.seq = (peers.client.seq + 1000) % 2**32  # far past the stored position
    out = []
    for _ in range(40):
        out.extend(switch.send(1, peers.client.segment(fr.TCP_ACK, b"\x00" * 10)))
    resets = [tcp_of(s) for s in out if tcp_of(s)[1].flags & fr.TCP_RST]
    assert {(str(ip.dst)) for ip, _ in resets} == {str(SERVER_IP), str(CLIENTS[1].ip)}
    assert switch.gateway.counters["connections_unrecoverable"] == 1
    assert switch.gateway.last_restore["connections_closed"] == 1
    assert switch.gre_flows() == [] and switch.gateway.state.calls == {}


# --- a reconnect with nothing stored, and a switch that forgot ------------------------------

def test_cold_start_removes_stale_flows_of_ours_and_only_ours(clock):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    foreign = parser.OFPFlowMod(None, table_id=2, priority=5, cookie=0x1234,
                                match=parser.OFPMatch(), instructions=[])
    switch.table.apply([foreign])
    switch.store.records = {}  # the state was lost
    switch.restart_controller()
    assert switch.gre_flows() == []
    assert [f.cookie for f in switch.table.flows(2)] == [0x1234]
    # the pair's two rewrites, the connection's two tracked flows
    assert switch.gateway.last_restore["flows_deleted"] == 4


def test_switch_that_forgot_its_flows_gets_them_back(clock):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    wanted = flow_set(switch)
    switch.gateway.datapath_down()
    switch.table = type(switch.table)()
    switch.apply(switch.gateway.datapath_up())
    assert flow_set(switch) == wanted
    carries_gre(switch, 1, 7, 0x80)


# --- random lives and restarts ---------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["call", "hang_up", "restart", "idle"]),
                         st.sampled_from([1, 2, 4])), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_set_ups_teardowns_and_restarts(ops):
    clock = FakeClock()
    switch = outbound_switch(clock, (PUBLIC, PUBLIC2))
    live: dict[int, tuple[Peers, int]] = {}
    sport = 40000
    for op, port in ops:
        if op == "call" and port not in live:
            sport += 1
            peers = Peers(switch, port, sport=sport)
            peers.start()
            peers.call(7, 0x80 + sport % 64)
            live[port] = (peers, 0x80 + sport % 64)
        elif op == "hang_up" and port in live:
            peers, server_id = live.pop(port)
            hang_up(switch, peers, 7, server_id)
        elif op == "restart":
            restart(switch)
            switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))  # as after any ARP timeout
        elif op == "idle":
            switch.tick(clock, 1)
    for port, (_, server_id) in live.items():
        (out,) = switch.send(port, CLIENTS[port].gre(SERVER_IP, server_id))
        assert out.port == OUTSIDE
    for peers, server_id in live.values():
        hang_up(switch, peers, 7, server_id)
    all_gone(switch, clock)


def test_records_round_trip_through_the_codec(clock):
    switch = outbound_switch(clock)
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
        peers.call(7, 0x80 if peers is first else 0x100)
    snapshot = switch.gateway.state.snapshot()
    again = GatewayState()
    again.load(snapshot)
    assert again.snapshot() == snapshot
    assert SCHEMA >= 1


@pytest.mark.parametrize("kind", ["conn", "call", "pair"])
def test_a_record_naming_a_missing_record_is_a_problem(clock, kind):
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    state = switch.gateway.state
    if kind == "conn":
        (call,) = state.calls.values()
        call.conn = 999
    elif kind == "call":
        (call,) = state.calls.values()
        call.pair = 999
    else:
        state.pairs[999] = next(iter(state.pairs.values()))
    with pytest.raises((AssertionError, KeyError)):
        problems = switch.gateway.problems()
        assert not problems, problems


def test_a_connection_is_written_by_the_time_the_server_answers_it(clock):
    """Killed right after the SYN-ACK went through (nothing lazy written): the connection
    is there. Killed between SYN and SYN-ACK: the SYN-ACK finds nothing, and the client's
    retransmitted SYN makes the mapping again."""
    switch = outbound_switch(clock)
    peers = Peers(switch, 1)  # SYN, SYN-ACK
    switch.restart_controller(lazy_written=False)
    assert [row["client"] for row in table(switch)] == [f"{CLIENTS[1].ip}:40000"]
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))  # neighbours are not kept
    late = TcpEnd(CLIENTS[2], 40001, SERVER_IP, 1723, 9000)
    (syn,) = switch.send(2, late.segment(fr.TCP_SYN))
    switch.restart_controller(lazy_written=False)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    ip, tcp = tcp_of(syn)
    server = TcpEnd(SERVER, 1723, ip.src, tcp.src_port, 5000, tcp.seq + 1)
    assert switch.send(OUTSIDE, server.segment(fr.TCP_SYN | fr.TCP_ACK)) == []
    late.seq = 9000  # the client retransmits its SYN
    (again,) = switch.send(2, late.segment(fr.TCP_SYN))
    assert tcp_of(again)[1].src_port == tcp.src_port
    server.seq = 5000
    (synack,) = switch.send(OUTSIDE, server.segment(fr.TCP_SYN | fr.TCP_ACK))
    assert synack.port == 2
    peers.start()
    assert len(table(switch)) == 2
