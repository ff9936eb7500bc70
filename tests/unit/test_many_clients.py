"""Many clients, one public address, one server: call-ID translation, pool, slow path."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.gre import parse_gre
from tests.unit.fakeswitch import FakeSwitch, tcp_of
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


@pytest.fixture
def switch(clock):
    sw = FakeSwitch.create(gateway_config(), clock, TIMEOUTS)
    sw.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return sw


def seen(sent) -> list[pptp.Message]:
    """The control messages in forwarded segments, as the receiver sees them."""
    stream = b"".join(tcp_of(s)[1].payload for s in sent)
    messages = []
    while stream:
        length = pptp.message_length(stream)
        messages.append(pptp.parse(stream[:length]))
        stream = stream[length:]
    return messages


def call_rows(switch) -> dict[str, dict]:
    return {s["client"].split(":")[0]: call for s in switch.gateway.sessions()
            for call in s["calls"]}


def gre_out(sent) -> tuple[int, str, int]:
    (out,) = sent
    assert out.via_controller
    ip = fr.parse_ipv4(fr.parse_ethernet(out.frame).payload)
    return out.port, str(ip.dst), parse_gre(ip.payload).call_id


def test_colliding_call_ids_are_translated_and_served_by_the_slow_path(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    (ocrq1,) = seen(first.from_client(pptp.OutgoingCallRequest(call_id=7)))
    (ocrq2,) = seen(second.from_client(pptp.OutgoingCallRequest(call_id=7)))
    assert ocrq1.call_id == 7 and ocrq2.call_id != 7  # the server never sees a collision
    public2 = ocrq2.call_id
    (ocrp2,) = seen(second.from_server(pptp.OutgoingCallReply(call_id=0x100,
                                                              peer_call_id=public2)))
    assert ocrp2.peer_call_id == 7  # the client gets its own ID back
    first.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7))
    rows = call_rows(switch)
    assert rows["10.0.0.11"] == {**rows["10.0.0.11"], "public_call_id": 7, "path": "slow"}
    assert rows["10.0.0.12"] == {**rows["10.0.0.12"], "client_call_id": 7,
                                 "public_call_id": public2, "path": "slow"}
    # Server to client: the controller picks the call by key and restores the call ID.
    assert gre_out(switch.send(OUTSIDE, SERVER.gre(PUBLIC, public2))) == (2, "10.0.0.12", 7)
    assert gre_out(switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))) == (1, "10.0.0.11", 7)
    assert switch.send(OUTSIDE, SERVER.gre(PUBLIC, 999)) == []
    assert switch.gateway.counters["gre_no_call"] == 1
    # Client to server stays in the switch.
    for port, server_id in ((1, 0x80), (2, 0x100)):
        (out,) = switch.send(port, CLIENTS[port].gre(SERVER_IP, server_id))
        assert not out.via_controller and out.fields["ipv4_src"] == str(PUBLIC)
    assert switch.gateway.counters["call_ids_translated"] == 1


def test_last_sharer_gone_the_remaining_pair_returns_to_the_fast_path(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers, server_id in ((first, 0x80), (second, 0x100)):
        peers.start()
        peers.call(call_id=7 if peers is first else 9, server_call_id=server_id)
    assert {c["path"] for c in call_rows(switch).values()} == {"slow"}
    second.from_server(pptp.CallDisconnectNotify(call_id=0x100))
    assert call_rows(switch)["10.0.0.11"]["path"] == "fast"
    (back,) = switch.send(OUTSIDE, SERVER.gre(PUBLIC, 7))
    assert not back.via_controller and back.port == 1


def test_translated_call_alone_on_its_key_stays_slow(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers, server_id in ((first, 0x80), (second, 0x100)):
        peers.start()
        peers.call(call_id=7, server_call_id=server_id)
    first.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    (row,) = call_rows(switch).values()
    assert row["public_call_id"] != row["client_call_id"]
    assert row["path"] == "slow"  # only the controller can rewrite the key back
    assert gre_out(switch.send(OUTSIDE, SERVER.gre(PUBLIC, row["public_call_id"]))) == (
        2, "10.0.0.12", 7)


def test_pool_keeps_three_clients_fast_with_their_own_ids(clock):
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2, IPv4Address("203.0.113.3"))),
                               clock, TIMEOUTS)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    publics = set()
    for port in (1, 2, 4):
        peers = Peers(switch, port, sport=40000)
        peers.start()
        peers.call(call_id=7, server_call_id=0x80 * port)
        publics.add(peers.public)
    assert len({address for address, _ in publics}) == 3
    rows = call_rows(switch)
    assert {(r["public_call_id"], r["path"]) for r in rows.values()} == {(7, "fast")}
    assert switch.gateway.counters["call_ids_translated"] == 0


def test_several_calls_on_one_control_connection(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(call_id=7, server_call_id=0x80)
    peers.call(call_id=8, server_call_id=0x81)
    (session,) = switch.gateway.sessions()
    assert [(c["client_call_id"], c["server_call_id"], c["path"]) for c in session["calls"]] \
        == [(7, 0x80, "fast"), (8, 0x81, "fast")]
    assert len(switch.gre_flows()) == 2  # one pair, shared
    peers.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    assert len(switch.gre_flows()) == 2
    peers.from_client(pptp.CallClearRequest(call_id=8))
    peers.from_server(pptp.CallDisconnectNotify(call_id=0x81))
    assert switch.gre_flows() == []


def test_every_call_id_message_is_translated_both_ways(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    first.call(call_id=5, server_call_id=0x80)
    (ocrq,) = seen(second.from_client(pptp.OutgoingCallRequest(call_id=5)))
    public = ocrq.call_id
    second.from_server(pptp.OutgoingCallReply(call_id=0x100, peer_call_id=public))
    to_server = [pptp.SetLinkInfo(peer_call_id=0x100), pptp.CallClearRequest(call_id=5)]
    to_client = [pptp.WanErrorNotify(peer_call_id=public)]
    assert seen(second.from_client(to_server[0])) == [to_server[0]]  # the server's own ID
    assert seen(second.from_server(to_client[0])) == [pptp.WanErrorNotify(peer_call_id=5)]
    assert seen(second.from_client(to_server[1])) == [pptp.CallClearRequest(call_id=public)]
    assert seen(second.from_server(pptp.CallDisconnectNotify(call_id=0x100))) == [
        pptp.CallDisconnectNotify(call_id=0x100)]
    assert "10.0.0.12" not in call_rows(switch)


def test_incoming_call_from_the_server_is_translated(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    first.call(call_id=5, server_call_id=0x80)
    second.from_server(pptp.IncomingCallRequest(call_id=0x200))
    (icrp,) = seen(second.from_client(pptp.IncomingCallReply(call_id=5, peer_call_id=0x200)))
    assert icrp.call_id != 5 and icrp.peer_call_id == 0x200
    (iccn,) = seen(second.from_server(pptp.IncomingCallConnected(peer_call_id=icrp.call_id)))
    assert iccn.peer_call_id == 5
    row = call_rows(switch)["10.0.0.12"]
    assert (row["state"], row["server_call_id"], row["path"]) == ("established", 0x200, "slow")


def test_request_split_byte_by_byte_is_translated(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    first.call(call_id=7, server_call_id=0x80)
    data = pptp.build(pptp.OutgoingCallRequest(call_id=7, call_serial_number=3))
    forwarded = b""
    for byte in data:
        frame = second.client.segment(fr.TCP_ACK | fr.TCP_PSH, bytes([byte]))
        for sent in switch.send(2, frame):
            forwarded += tcp_of(sent)[1].payload
    message = pptp.parse(forwarded)
    assert message.call_id != 7 and message.call_serial_number == 3
    assert call_rows(switch)["10.0.0.12"]["public_call_id"] == message.call_id


def test_coalesced_messages_and_retransmissions(switch):
    peers = Peers(switch, 1)
    payload = pptp.build(pptp.StartControlConnectionRequest()) + \
        pptp.build(pptp.OutgoingCallRequest(call_id=7))
    seq = peers.client.seq
    frame = peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, payload)
    assert [type(m).__name__ for m in seen(switch.send(1, frame))] == [
        "StartControlConnectionRequest", "OutgoingCallRequest"]
    again = peers.client.host.tcp(SERVER_IP, 40000, 1723, seq, peers.client.ack,
                                  fr.TCP_ACK | fr.TCP_PSH, payload)
    (resent,) = switch.send(1, again)  # forwarded again, unchanged, no second call
    assert tcp_of(resent)[1].payload == payload
    (session,) = switch.gateway.sessions()
    assert len(session["calls"]) == 1


def test_translated_ids_are_released_with_their_calls(switch):
    first, second = Peers(switch, 1), Peers(switch, 2)
    for peers in (first, second):
        peers.start()
    first.call(call_id=7, server_call_id=0x80)
    second.call(call_id=7, server_call_id=0x100)  # translated
    second.from_server(pptp.CallDisconnectNotify(call_id=0x100))
    first.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    idx = switch.gateway.state.idx
    assert idx.inward == {} and idx.pending_ids == {}
    second.call(call_id=7, server_call_id=0x101)
    assert call_rows(switch)["10.0.0.12"]["public_call_id"] == 7


def test_call_cleared_before_its_reply_ends_on_the_disconnect_notify(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=5))
    peers.from_client(pptp.CallClearRequest(call_id=5))
    peers.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=5))
    assert switch.gre_flows() != []  # only the pending via-controller flow
    peers.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    (session,) = switch.gateway.sessions()
    assert session["calls"] == [] and session["errors"] == {}
    assert switch.gre_flows() == []


def test_pool_address_is_reused_once_its_client_is_gone(clock):
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    first, second = Peers(switch, 1), Peers(switch, 2)
    assert (first.public[0], second.public[0]) == (PUBLIC, PUBLIC2)
    switch.send(1, first.client.segment(fr.TCP_RST))
    switch.tick(clock, TIMEOUTS.closing_linger)  # the first client's mapping is forgotten
    third = Peers(switch, 4)
    assert third.public[0] == PUBLIC
    again = Peers(switch, 2, sport=40001)  # the second client keeps its address
    assert again.public[0] == PUBLIC2


def test_shared_pool_address_is_free_only_once_every_sharer_is_gone(clock):
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    first, second, third = Peers(switch, 1), Peers(switch, 2), Peers(switch, 4)
    assert [p.public[0] for p in (first, second, third)] == [PUBLIC, PUBLIC2, PUBLIC]
    for leaving in (first, second):  # PUBLIC keeps the third client; PUBLIC2 is free
        switch.send(leaving.port, leaving.client.segment(fr.TCP_RST))
    switch.tick(clock, TIMEOUTS.closing_linger)
    assert Peers(switch, 1, sport=40001).public[0] == PUBLIC2  # not the still-shared PUBLIC
    switch.send(4, third.client.segment(fr.TCP_RST))
    switch.tick(clock, TIMEOUTS.closing_linger)
    assert Peers(switch, 2, sport=40001).public[0] == PUBLIC


def test_every_index_empties_once_every_connection_is_gone(clock):
    switch = FakeSwitch.create(gateway_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    gateway = switch.gateway
    everyone = [Peers(switch, 1), Peers(switch, 2), Peers(switch, 4),  # 4 shares PUBLIC
                Peers(switch, 1, sport=40001)]  # a second connection of client 1
    for call_id, peers in enumerate(everyone, 7):
        peers.start()
        peers.call(call_id, 0x80 + call_id)
    assert len(gateway.state.pairs) == 3 and len(gateway.state.idx.key_pairs) == 2
    assert [len(s["calls"]) for s in gateway.sessions()] == [1, 1, 1, 1]
    for peers in everyone:
        switch.send(peers.port, peers.client.segment(fr.TCP_RST))
    switch.tick(clock, TIMEOUTS.closing_linger)
    assert gateway.sessions() == [] and switch.gre_flows() == []
    state = gateway.state
    assert (state.conns, state.calls, state.pairs) == ({}, {}, {})
    assert state.idx == type(state.idx)()  # every index empty
