"""Tearing down a session, or one call, on request (issue 14): the peers are told the
PPTP way, at the right places in their streams, and the records and flows go."""

from __future__ import annotations

import pytest

from ryu_pptp_alg import pipeline, seqshift
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.gateway import INJECTION_TRIES
from ryu_pptp_alg.records import (
    Conn,
    Injection,
    SeqShift,
    decode_conn,
    encode_conn,
)
from tests.unit.fakeswitch import FakeSwitch, tcp_of
from tests.unit.test_outbound import OUTSIDE, SERVER, TIMEOUTS, Peers, gateway_config


@pytest.fixture
def switch(clock):
    sw = FakeSwitch.create(gateway_config(), clock, TIMEOUTS)
    sw.send(OUTSIDE, SERVER.arp_request(sw.gateway.config.public_addresses[0]))
    return sw


def conn_of(switch: FakeSwitch) -> Conn:
    (conn,) = switch.gateway.state.conns.values()
    return conn


def run(switch: FakeSwitch, answer):
    """Apply a teardown's messages; what left the switch, as (port, Tcp) by port."""
    msgs, summary = answer
    before = len(switch.wire)
    switch.apply(msgs)
    out: dict[int, list[fr.Tcp]] = {}
    for sent in switch.wire[before:]:
        out.setdefault(sent.port, []).append(tcp_of(sent)[1])
    return out, summary


def messages(segments: list[fr.Tcp]) -> list[pptp.Message]:
    data = b"".join(s.payload for s in segments)
    found = []
    while data:
        length = pptp.message_length(data)
        found.append(pptp.parse(data[:length]))
        data = data[length:]
    return found


def tracked_flows(switch: FakeSwitch, conn_id: int) -> list:
    return [f for f in switch.table.flows(pipeline.TABLE_CLASSIFY)
            if f.cookie == pipeline.cookie(pipeline.CookieKind.CONNECTION, conn_id)]


# --- a whole session --------------------------------------------------------------------

def test_session_teardown_tells_both_ends_then_resets_them(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    peers.call(8, 0x81)
    conn = conn_of(switch)
    assert tracked_flows(switch, conn.id) and len(switch.gre_flows()) == 2
    out, summary = run(switch, switch.gateway.teardown(conn.id))
    assert summary == {"calls": [7, 8], "flows_deleted": 4, "peers_told": True}
    # To the server, as from the client: where the client's stream stands.
    *data, rst = out[OUTSIDE]
    assert messages(data) == [
        pptp.CallClearRequest(call_id=7), pptp.CallClearRequest(call_id=8),
        pptp.StopControlConnectionRequest(reason=3)]
    assert data[0].seq == peers.client.seq and data[0].ack == peers.server.seq
    assert (data[0].src_port, data[0].dst_port) == (peers.public[1], 1723)
    assert rst.flags & fr.TCP_RST and rst.seq == peers.client.seq + 2 * 16 + 16
    # To the client, as from the server.
    *data, rst = out[1]
    assert messages(data) == [
        pptp.CallDisconnectNotify(call_id=0x80, result_code=3),
        pptp.CallDisconnectNotify(call_id=0x81, result_code=3),
        pptp.StopControlConnectionRequest(reason=3)]
    assert data[0].seq == peers.server.seq and data[0].ack == peers.client.seq
    assert (data[0].src_port, data[0].dst_port) == (1723, 40000)
    assert rst.flags & fr.TCP_RST and rst.seq == peers.server.seq + 2 * 148 + 16
    assert switch.gateway.sessions() == [] and switch.gateway.state.calls == {}
    assert switch.gre_flows() == [] and tracked_flows(switch, conn.id) == []
    assert switch.gateway.counters["sessions_torn_down"] == 1
    assert switch.store.records.get("conn", {}) == {}


def test_unknown_session_or_call_is_a_key_error(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    conn = conn_of(switch)
    with pytest.raises(KeyError):
        switch.gateway.teardown(conn.id + 1000)
    with pytest.raises(KeyError):
        switch.gateway.end_call(conn.id, 9)
    with pytest.raises(KeyError):
        switch.gateway.end_call(conn.id + 1000, 7)


def test_a_restored_stream_not_yet_picked_up_gets_a_reset_only(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    switch.restart_controller()
    switch.send(OUTSIDE, SERVER.arp_request(switch.gateway.config.public_addresses[0]))
    conn = conn_of(switch)
    out, summary = run(switch, switch.gateway.teardown(conn.id))
    assert summary["peers_told"] is False and summary["calls"] == [7]
    ((to_server,), (to_client,)) = out[OUTSIDE], out[1]
    assert to_server.flags & fr.TCP_RST and not to_server.payload
    # At the restored marks: where the streams stood when last written (they may lag).
    assert to_server.seq == peers.client.seq
    assert to_client.flags & fr.TCP_RST and to_client.seq == peers.server.seq - 32
    assert switch.gre_flows() == [] and switch.gateway.sessions() == []


def test_a_connection_mid_message_is_reset_without_messages(switch):
    peers = Peers(switch, 1)
    peers.start()
    request = pptp.build(pptp.OutgoingCallRequest(call_id=7))
    switch.send(1, peers.client.segment(fr.TCP_ACK, request[:40]))  # half a message
    out, summary = run(switch, switch.gateway.teardown(conn_of(switch).id))
    assert summary["peers_told"] is False
    ((rst,),) = (out[OUTSIDE],)
    assert rst.flags & fr.TCP_RST and rst.seq == peers.client.seq  # after the 40 bytes


# --- one call ---------------------------------------------------------------------------

def ended_call(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    conn = conn_of(switch)
    at_client, at_server = peers.client.seq, peers.server.seq
    out, summary = run(switch, switch.gateway.end_call(conn.id, 7))
    return peers, conn, out, summary, at_client, at_server


def test_end_call_tells_both_ends_and_removes_the_call(switch):
    _peers, conn, out, summary, at_client, at_server = ended_call(switch)
    assert summary == {"calls": [7], "flows_deleted": 2, "peers_told": True}
    ((clear,), (notify,)) = out[OUTSIDE], out[1]
    assert pptp.parse(clear.payload) == pptp.CallClearRequest(call_id=7)
    assert (clear.seq, clear.ack) == (at_client, at_server)
    assert pptp.parse(notify.payload) == pptp.CallDisconnectNotify(call_id=0x80, result_code=3)
    assert (notify.seq, notify.ack) == (at_server, at_client)
    assert switch.gre_flows() == [] and switch.gateway.state.calls == {}
    assert tracked_flows(switch, conn.id)  # the connection goes on
    assert switch.gateway.sessions()[0]["calls"] == []
    assert switch.gateway.counters["calls_torn_down"] == 1


def test_after_end_call_both_streams_are_shifted_consistently(switch):
    peers, _conn, _, _, at_client, at_server = ended_call(switch)
    # The client's next bytes reach the server after the Call-Clear-Request; its
    # acknowledgement of the Call-Disconnect-Notify does not reach the server.
    peers.client.ack = at_server + 148
    (echo,) = peers.from_client(pptp.EchoRequest(identifier=1))
    assert (tcp_of(echo)[1].seq, tcp_of(echo)[1].ack) == (at_client + 16, at_server)
    assert not conn_of(switch).to_client_shift.pending  # acknowledged: settled
    # An acknowledgement inside the injected bytes acknowledges nothing past them.
    peers.server.ack = at_client + 8
    (ack,) = switch.send(OUTSIDE, peers.server.segment(fr.TCP_ACK))
    assert tcp_of(ack)[1].ack == at_client
    assert conn_of(switch).to_server_shift.pending  # not yet all of them
    # The server's acknowledgement comes back to the client without the injected bytes.
    peers.server.ack = at_client + 16 + 16
    (reply,) = peers.from_server(pptp.EchoReply(identifier=1))
    _, tcp = tcp_of(reply)
    assert (tcp.seq, tcp.ack) == (at_server + 148, at_client + 16)
    assert pptp.parse(tcp.payload) == pptp.EchoReply(identifier=1)
    assert conn_of(switch).to_server_shift == SeqShift(16)


def test_the_servers_answer_reaches_the_client_and_ends_nothing_else(switch):
    peers, _conn, _, _, _, _ = ended_call(switch)
    peers.server.ack = peers.client.seq + 16
    (cdn,) = peers.from_server(pptp.CallDisconnectNotify(call_id=0x80))
    assert pptp.parse(tcp_of(cdn)[1].payload) == pptp.CallDisconnectNotify(call_id=0x80)
    assert conn_of(switch).state == "established"


def test_an_unacknowledged_injection_is_sent_again_from_tick(switch, clock):
    peers, _conn, _, _, at_client, at_server = ended_call(switch)
    before = len(switch.wire)
    switch.tick(clock, 1)
    again = {s.port: tcp_of(s)[1] for s in switch.wire[before:]}
    assert pptp.parse(again[OUTSIDE].payload) == pptp.CallClearRequest(call_id=7)
    assert again[OUTSIDE].seq == at_client and again[1].seq == at_server
    # The server acknowledges it: no more resends that way; the client has not.
    peers.server.ack = at_client + 16
    switch.send(OUTSIDE, peers.server.segment(fr.TCP_ACK))
    assert conn_of(switch).to_server_shift == SeqShift(16)
    for _ in range(INJECTION_TRIES + 2):
        before = len(switch.wire)
        switch.tick(clock, 1)
        assert all(s.port == 1 for s in switch.wire[before:])
    assert switch.gateway.counters["injections_resent"] == 1 + INJECTION_TRIES - 1
    assert conn_of(switch).to_client_shift.pending[0].tries == INJECTION_TRIES


def test_the_shift_survives_a_controller_restart(switch, clock):
    peers, _conn, _, _, at_client, at_server = ended_call(switch)
    switch.restart_controller()
    switch.send(OUTSIDE, SERVER.arp_request(switch.gateway.config.public_addresses[0]))
    (echo,) = peers.from_client(pptp.EchoRequest(identifier=1))
    assert tcp_of(echo)[1].seq == at_client + 16
    peers.server.ack = at_client + 32
    (reply,) = peers.from_server(pptp.EchoReply(identifier=1))
    assert (tcp_of(reply)[1].seq, tcp_of(reply)[1].ack) == (at_server + 148, at_client + 16)
    before = len(switch.wire)
    switch.tick(clock, 1)  # the client's notify is still unacknowledged: sent again
    (again,) = [tcp_of(s)[1] for s in switch.wire[before:]]
    assert again.seq == at_server and pptp.parse(again.payload).call_id == 0x80


def test_a_retransmission_across_the_injection_point_is_split(switch):
    peers, _conn, _, _, at_client, _ = ended_call(switch)
    echo = pptp.build(pptp.EchoRequest(identifier=1))
    peers.from_client(pptp.EchoRequest(identifier=1))
    # The client resends its last 16 bytes before the injection with the echo.
    tail = pptp.build(pptp.OutgoingCallRequest(call_id=7))[-16:]
    peers.client.seq = at_client - 16
    out = switch.send(1, peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, tail + echo))
    pieces = [tcp_of(s)[1] for s in out]
    assert [(p.seq, len(p.payload)) for p in pieces] == [(at_client - 16, 16),
                                                          (at_client + 16, 16)]
    assert not pieces[0].flags & fr.TCP_PSH and pieces[1].payload == echo


def test_a_second_call_ended_later_shifts_on_top(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 0x80)
    peers.call(8, 0x81)
    conn = conn_of(switch)
    at_client = peers.client.seq
    switch.apply(switch.gateway.end_call(conn.id, 7)[0])
    out, _ = run(switch, switch.gateway.end_call(conn.id, 8))
    ((clear,),) = (out[OUTSIDE],)
    assert clear.seq == at_client + 16 and pptp.parse(clear.payload).call_id == 8
    (echo,) = peers.from_client(pptp.EchoRequest(identifier=1))
    assert tcp_of(echo)[1].seq == at_client + 32
    assert switch.gre_flows() == []


# --- the pieces -------------------------------------------------------------------------

def test_shift_arithmetic_wraps_and_settles():
    shift = seqshift.inject(None, 2**32 - 4, b"x" * 10, 0)
    assert seqshift.out_seq(shift, 2**32 - 5) == 2**32 - 5
    assert seqshift.out_seq(shift, 2**32 - 4) == 6
    assert seqshift.split(shift, 2**32 - 6, 4) == [(0, 2, 2**32 - 6), (2, 2, 6)]
    assert seqshift.ack_back(shift, 2**32 - 5) == (2**32 - 5, shift)
    assert seqshift.ack_back(shift, 3) == (2**32 - 4, shift)  # inside the injected bytes
    assert seqshift.ack_back(shift, 7) == (2**32 - 3, SeqShift(10))


def test_sack_blocks_are_blanked_and_other_options_kept():
    sack = bytes([1, 1, 5, 10]) + bytes(8)
    timestamps = bytes([1, 1, 8, 10]) + bytes(8)
    assert seqshift.blank_sack(sack + timestamps) == bytes([1]) * 12 + timestamps


def test_the_shift_round_trips_through_the_codec(switch):
    _peers, conn, _, _, _, _ = ended_call(switch)
    conn.to_server_shift = SeqShift(16, (Injection(5, b"abc", 9, 2),))
    again = decode_conn(conn.id, encode_conn(conn))
    assert (again.to_server_shift, again.to_client_shift) \
        == (conn.to_server_shift, conn.to_client_shift)
