"""The fuzzers' findings, minimized to plain tests (issue 13; docs/fuzzing.md has each
one's cause and fix).

A defect that is not fixed yet is ``xfail(strict=True)``: once a fix makes its test pass,
the run fails (XPASS) until the mark is removed, with its classes in ``known.py``. Fixed
findings, and the defects issue 13 listed, keep a plain regression test here, in the
shape the fuzzer drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

import pytest
from webob import Request

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.alg import Alg, RequestError
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import ConfigError, Limits, config_from_dict, parse_config
from ryu_pptp_alg.gateway import Gateway
from ryu_pptp_alg.neighbours import Neighbours, Side
from tests.fuzz import target_config, target_rest
from tests.fuzz import target_gateway as tg
from tests.unit.fakeswitch import FakeClock, FakeSwitch, Host, Sent, TcpEnd

C1, C2, SRV, S, Q = tg.C1, tg.C2, tg.SRV, tg.S, tg.Q
PUBLIC = tg.PUBLIC


def xfail(what: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"issue 13: {what}")


def gateway(clock: FakeClock, limits: Limits | None = None) -> FakeSwitch:
    """The fuzz target's gateway (port forward PUBLIC[0] -> SRV), its hosts learnt from
    their ARP requests."""
    switch = FakeSwitch(Gateway(tg.gateway_config(0), tg.TIMEOUTS, clock=clock, limits=limits))
    switch.apply(switch.gateway.datapath_up())
    for node in (SRV, C1, C2):
        switch.send(node.port, node.host.arp_request(tg.GW_IP))
    for node in (S, Q):
        switch.send(node.port, node.host.arp_request(PUBLIC[0]))
    return switch


def arp(node: tg.Node, opcode: int, sender: IPv4Address, target: IPv4Address) -> bytes:
    packet = fr.Arp(opcode, node.host.mac, sender, fr.ZERO_MAC, target)
    return fr.build_ethernet(fr.Ethernet(fr.BROADCAST_MAC, node.host.mac, fr.ETH_TYPE_ARP,
                                         fr.build_arp(packet)))


def syn(switch: FakeSwitch, node: tg.Node, dst: IPv4Address, sport: int = 40000) -> TcpEnd:
    end = TcpEnd(node.host, sport, dst, pptp.PPTP_PORT, 1000)
    switch.send(node.port, end.segment(fr.TCP_SYN))
    return end


def public_into_lan(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.port in tg.INSIDE_PORTS
            and IPv4Address(s.fields.get("ipv4_src", "0.0.0.0")) in PUBLIC]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- found by the fuzzers and fixed (lines at the commit where found) --------------------

def test_an_outside_source_from_the_lan_is_not_natted(clock: FakeClock) -> None:
    # gateway.py _tcp opened outbound connections from any source; the server's answers
    # then left by the WAN to the spoofed host, un-NATed.
    switch = gateway(clock)
    spoofer = Host(C1.host.mac, Q.host.ip, tg.GW_MAC)  # on C1's port, claiming Q's address
    client = TcpEnd(spoofer, 40000, S.host.ip, pptp.PPTP_PORT, 1000)
    switch.send(C1.port, client.segment(fr.TCP_SYN))
    assert switch.gateway.state.conns == {}
    for conn in list(switch.gateway.state.conns.values()):  # what it leads to, else
        server = TcpEnd(S.host, pptp.PPTP_PORT, conn.public_ip, conn.public_port, 5000,
                        client.seq)
        sent = switch.send(S.port, server.segment(fr.TCP_SYN | fr.TCP_ACK))
        assert [s.port for s in sent if s.port in tg.OUTSIDE_PORTS] == []
    assert switch.gateway.counters["spoofed_source"] == 1


@pytest.mark.parametrize("early", ["client data", "client FIN", "server ACK"])
def test_unanswered_index_follows_its_connection(clock: FakeClock, early: str) -> None:
    switch = gateway(clock)
    client = syn(switch, C1, S.host.ip)
    if early == "client data":  # before the server's SYN-ACK: the state becomes starting
        switch.send(C1.port, client.message(pptp.StartControlConnectionRequest()))
    elif early == "client FIN":  # closing
        switch.send(C1.port, client.segment(fr.TCP_FIN | fr.TCP_ACK))
    else:  # the server's first packet is no SYN-ACK: answered, yet its stream is unset
        (conn,) = switch.gateway.state.conns.values()
        server = TcpEnd(S.host, pptp.PPTP_PORT, conn.public_ip, conn.public_port, 5000)
        switch.send(S.port, server.segment(fr.TCP_ACK))
    # FakeSwitch.apply asserted the indexes equal their rebuilt form on every step.


@pytest.mark.parametrize("how", ["timeout", "early drop"])
def test_an_unanswered_connection_takes_its_calls_flows_along(clock: FakeClock,
                                                                how: str) -> None:
    """Found by the fuzzer at e8c42dd (gateway.py _forget dropped call_closed's flow
    changes, so the key's via-controller flow stayed in the switch); fixed in c98be10."""
    switch = gateway(clock, Limits(max_connections=1) if how == "early drop" else None)
    client = syn(switch, C1, S.host.ip)
    switch.send(C1.port, client.message(pptp.OutgoingCallRequest(call_id=7)))
    assert len(switch.gre_flows()) == 1  # inward GRE of the new pair: via the controller
    if how == "timeout":
        switch.tick(clock, 11)  # Timeouts.unanswered: 10 s
    else:
        syn(switch, C2, S.host.ip)  # at the cap: the unanswered one makes room
    conns = switch.gateway.state.conns.values()
    assert all(c.client_ip != C1.host.ip for c in conns) and not switch.gateway.state.pairs
    assert switch.gre_flows() == []


def test_a_refused_connection_leaves_no_flows(clock: FakeClock) -> None:
    switch = gateway(clock)
    client = syn(switch, C1, S.host.ip)
    (conn,) = switch.gateway.state.conns.values()
    server = TcpEnd(S.host, pptp.PPTP_PORT, conn.public_ip, conn.public_port, 0, client.seq)
    switch.send(S.port, server.segment(fr.TCP_RST | fr.TCP_ACK))  # nothing listens
    drain(switch, clock)
    assert switch.gateway.state.conns == {}
    tracked = [f for f in switch.table.flows() if (pipeline.decode_cookie(f.cookie) or
               pipeline.decode_cookie(pipeline.COOKIE_TAG)).kind == pipeline.CookieKind.CONNECTION]
    assert tracked == []


def test_no_nat_towards_the_gateways_own_public_address(clock: FakeClock) -> None:
    switch = gateway(clock)
    before = len(switch.wire)
    syn(switch, C1, PUBLIC[0])  # the forward's public address, from inside
    assert switch.gateway.state.conns == {}
    assert [s for s in switch.wire[before:] if s.port in tg.OUTSIDE_PORTS] == []


def test_a_lan_source_from_the_wan_is_not_forwarded_to(clock: FakeClock) -> None:
    switch = gateway(clock)
    spoofer = Host(Q.host.mac, C1.host.ip, tg.GW_MAC)  # 10.0.0.11, on the WAN port
    peer = TcpEnd(spoofer, 50000, PUBLIC[0], pptp.PPTP_PORT, 7000)
    switch.send(Q.port, peer.segment(fr.TCP_SYN))
    server = TcpEnd(SRV.host, pptp.PPTP_PORT, C1.host.ip, 50000, 9000, peer.seq)
    sent = switch.send(SRV.port, server.segment(fr.TCP_SYN | fr.TCP_ACK))
    assert public_into_lan(sent) == []
    assert switch.gateway.state.conns == {}


@pytest.mark.parametrize("node,address", [(C1, tg.GW_IP), (S, PUBLIC[0])])
def test_the_gateways_own_addresses_are_never_neighbours(clock: FakeClock, node: tg.Node,
                                                         address: IPv4Address) -> None:
    switch = gateway(clock)
    switch.send(node.port, arp(node, fr.ARP_REQUEST, address, tg.GW_IP))
    switch.send(node.port, arp(node, fr.ARP_REPLY, address, PUBLIC[0]))
    assert address not in switch.gateway.neighbours.table


def test_a_teardown_batch_leaves_no_flow_on_a_reordering_switch(clock: FakeClock) -> None:
    switch = gateway(clock)
    switch.send(tg.C3.port, tg.C3.host.arp_request(tg.GW_IP))
    established(switch, C1, 5)  # takes PUBLIC[1]; the next two share PUBLIC[0]'s key
    established(switch, C2, 7)
    established(switch, tg.C3, 9)
    assert len(switch.gateway.state.idx.key_pairs[(S.host.ip, PUBLIC[0])]) == 2
    switch.reorder = True  # as OpenFlow allows between barriers
    for seconds in (20, 20):  # GRE keeps the outward flows alive; the control links idle
        switch.tick(clock, seconds)
        for node in (C1, C2, tg.C3):
            switch.send(node.port, node.host.gre(S.host.ip, 0x80))
    switch.tick(clock, 21)  # every control connection idles out in one tick
    assert switch.gateway.state.pairs == {}
    assert switch.gre_flows() == []


def test_an_inbound_and_an_outbound_call_between_the_same_hosts_keep_their_paths(
        clock: FakeClock) -> None:
    switch = gateway(clock)
    peer = TcpEnd(Q.host, 50000, PUBLIC[0], pptp.PPTP_PORT, 7000)  # Q calls SRV inbound
    switch.send(Q.port, peer.segment(fr.TCP_SYN))
    server = TcpEnd(SRV.host, pptp.PPTP_PORT, Q.host.ip, 50000, 9000, peer.seq)
    switch.send(SRV.port, server.segment(fr.TCP_SYN | fr.TCP_ACK))
    peer.ack = server.seq
    for end, port, msg in ((peer, Q.port, pptp.StartControlConnectionRequest()),
                           (server, SRV.port, pptp.StartControlConnectionReply()),
                           (peer, Q.port, pptp.OutgoingCallRequest(call_id=0x31)),
                           (server, SRV.port, pptp.OutgoingCallReply(call_id=0x90,
                                                                     peer_call_id=0x31))):
        switch.send(port, end.message(msg))
    # SRV calls Q outbound (through the other public address): a second pair, SRV <-> Q.
    client = TcpEnd(SRV.host, 40000, Q.host.ip, pptp.PPTP_PORT, 1000)
    switch.send(SRV.port, client.segment(fr.TCP_SYN))
    conn = switch.gateway.state.idx.by_inside[(SRV.host.ip, 40000, Q.host.ip, 1723)]
    far = TcpEnd(Q.host, pptp.PPTP_PORT, conn.public_ip, conn.public_port, 5000, client.seq)
    switch.send(Q.port, far.segment(fr.TCP_SYN | fr.TCP_ACK))
    client.ack = far.seq
    for end, port, msg in ((client, SRV.port, pptp.StartControlConnectionRequest()),
                           (far, Q.port, pptp.StartControlConnectionReply()),
                           (client, SRV.port, pptp.OutgoingCallRequest(call_id=7)),
                           (far, Q.port, pptp.OutgoingCallReply(call_id=0x80,
                                                                peer_call_id=7)),
                           (client, SRV.port, pptp.CallClearRequest(call_id=7)),
                           (far, Q.port, pptp.CallDisconnectNotify(call_id=0x80))):
        switch.send(port, end.message(msg))
    # The inbound call goes on: its GRE to Q still leaves from the address Q called.
    (out,) = switch.send(SRV.port, SRV.host.gre(Q.host.ip, 0x31))
    assert (out.port, out.fields["ipv4_src"]) == (Q.port, str(PUBLIC[0]))


def nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


@pytest.mark.parametrize("field", ["public", "inside"])
def test_alg_refuses_deeply_nested_values(field: str) -> None:
    alg = Alg(target_rest.CONFIG, clock=lambda: 1000.0)
    body = {"public": "203.0.113.1", "inside": "10.0.0.11", "dpid": 1,
            field: nested(5000, "x")}
    with pytest.raises(RequestError):
        alg.add_forward(body)


def test_rest_answers_every_nesting_depth() -> None:
    target_rest.DATA[target_rest.ALG_KEY] = Alg(target_rest.CONFIG, clock=lambda: 1000.0)
    escaped = []
    for depth in range(900, 1000):  # where json.loads just copes: the stack decides
        text = '{"public": "203.0.113.1", "dpid": 1, "inside": %s}' % (
            "[" * depth + '"x"' + "]" * depth)
        request = Request.blank("/pptp/forwards", method="POST")
        request.body = text.encode()
        request.content_type = "application/json"
        try:
            assert request.get_response(target_rest.APP).status_int == 400
        except RecursionError:
            escaped.append(depth)
    assert escaped == []


@pytest.mark.parametrize("document", [
    {"gateways": [nested(5000, 1)]},
    {**target_config.BASE, "state": {"backend": nested(5000, "file")}},
], ids=["gateway", "state.backend"])
def test_config_refuses_deeply_nested_values(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        config_from_dict(document)


def test_config_refuses_deeply_nested_yaml() -> None:
    with pytest.raises(ConfigError):
        parse_config("gateways: " + "[" * 1000 + "]" * 1000)


# --- defects issue 13 listed, fixed: regression tests -----------------------------------

def established(switch: FakeSwitch, node: tg.Node, call_id: int) -> tuple[TcpEnd, TcpEnd]:
    client = syn(switch, node, S.host.ip)
    conn = switch.gateway.state.idx.by_inside[(node.host.ip, 40000, S.host.ip, 1723)]
    server = TcpEnd(S.host, pptp.PPTP_PORT, conn.public_ip, conn.public_port, 5000,
                    client.seq)
    switch.send(S.port, server.segment(fr.TCP_SYN | fr.TCP_ACK))
    client.ack = server.seq
    for end, port, msg in ((client, node.port, pptp.StartControlConnectionRequest()),
                           (server, S.port, pptp.StartControlConnectionReply()),
                           (client, node.port, pptp.OutgoingCallRequest(call_id=call_id)),
                           (server, S.port, pptp.OutgoingCallReply(call_id=0x80,
                                                                   peer_call_id=call_id))):
        switch.send(port, end.message(msg))
    return client, server


def drain(switch: FakeSwitch, clock: FakeClock) -> None:
    for seconds in tg.DRAIN:
        switch.tick(clock, seconds)


@pytest.mark.parametrize("close", [fr.TCP_FIN | fr.TCP_ACK, fr.TCP_RST])
def test_data_after_fin_or_rst_makes_no_call(clock: FakeClock, close: int) -> None:
    switch = gateway(clock)
    client, server = established(switch, C1, 7)
    switch.send(C1.port, client.segment(close))
    switch.send(C1.port, client.message(pptp.OutgoingCallRequest(call_id=9)))
    switch.send(S.port, server.message(pptp.OutgoingCallReply(call_id=0x99, peer_call_id=9)))
    assert switch.gateway.state.calls == {}
    drain(switch, clock)
    assert switch.gateway.state.conns == {} and switch.gre_flows() == []


def test_a_request_reusing_a_live_call_id_changes_nothing(clock: FakeClock) -> None:
    switch = gateway(clock)
    client, server = established(switch, C1, 7)
    (call,) = switch.gateway.state.calls.values()
    switch.send(C1.port, client.message(pptp.OutgoingCallRequest(call_id=7)))
    switch.send(S.port, server.message(pptp.OutgoingCallReply(call_id=0x81, peer_call_id=7)))
    assert list(switch.gateway.state.calls.values()) == [call]
    assert call.server_call_id == 0x80
    drain(switch, clock)
    assert switch.gateway.state.calls == {} and switch.gre_flows() == []


@pytest.mark.parametrize("send", [
    lambda sw: sw.send(5, S.host.arp_request(PUBLIC[0])),  # a port on neither side
    lambda sw: sw.send(C1.port, arp(C1, fr.ARP_REQUEST, S.host.ip, tg.GW_IP)),  # wrong side
    lambda sw: sw.send(S.port, arp(S, 3, Host("", IPv4Address("192.0.2.99"), "").ip,
                                   PUBLIC[0])),  # neither request nor reply
], ids=["neither-side", "wrong-side", "opcode-3"])
def test_neighbours_learn_only_from_arp_on_their_own_side(
        clock: FakeClock, send: Callable[[FakeSwitch], list[Sent]]) -> None:
    switch = gateway(clock)
    table = dict(switch.gateway.neighbours.table)
    sent = send(switch)
    assert switch.gateway.neighbours.table == table
    assert [s.port for s in sent if s.port not in tg.SIDE_PORTS] == []


def test_an_inside_to_inside_syn_is_not_natted(clock: FakeClock) -> None:
    switch = gateway(clock)
    end = TcpEnd(C1.host, 40000, C2.host.ip, pptp.PPTP_PORT, 1000)
    assert public_into_lan(switch.send(C1.port, end.segment(fr.TCP_SYN))) == []
    assert switch.gateway.state.conns == {}


def test_outbound_and_inbound_connections_that_look_alike_keep_their_indexes(
        clock: FakeClock) -> None:
    """SRV:1723 -> Q:1723 outbound, then Q:1723 -> PUBLIC[0]:1723 inbound (forwarded to
    SRV:1723): both would be indexed at (SRV, 1723, Q, 1723) from inside."""
    switch = gateway(clock)
    out = TcpEnd(SRV.host, 1723, Q.host.ip, 1723, 1000)
    switch.send(SRV.port, out.segment(fr.TCP_SYN))
    inbound = TcpEnd(Q.host, 1723, PUBLIC[0], 1723, 7000)
    switch.send(Q.port, inbound.segment(fr.TCP_SYN))
    assert len(switch.gateway.state.conns) == 1
    drain(switch, clock)  # FakeSwitch.apply checks the indexes at every step
    assert switch.gateway.state.conns == {}


def test_the_neighbour_table_is_bounded() -> None:
    neighbours = Neighbours("0e:00:00:00:00:01",
                            {"inside": Side("inside", (1,), (tg.GW_IP,)),
                             "outside": Side("outside", (3,), PUBLIC)},
                            1.0, 3.0, tg.LAN, max_entries=100)
    for i in range(1000):  # junk sources, one entry each
        neighbours.learn(IPv4Address(0xC6000000 + i), "02:00:00:00:00:01", 3)
    assert len(neighbours.table) == 100
