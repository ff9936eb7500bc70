"""Log lines: each names its gateway and dpid; each call event is one key=value line."""

from __future__ import annotations

import logging
import re

import pytest

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.logs import GatewayLog
from tests.unit.fakeswitch import FakeSwitch
from tests.unit.test_outbound import OUTSIDE, PUBLIC, PUBLIC2, SERVER, TIMEOUTS, Peers
from tests.unit.test_refusals import STATIC

PREFIX = "gateway=gw1 dpid=0x1 "


def named_config(publics=(PUBLIC,)):
    return config_from_dict({"gateways": [{
        "dpid": 1, "name": "gw1", "inside_ports": [1, 2, 4], "outside_ports": [OUTSIDE],
        "inside_address": "10.0.0.1/24", "public_addresses": [str(p) for p in publics],
    }]}).gateways[0]


@pytest.fixture
def switch(clock):
    sw = FakeSwitch.create(named_config(), clock, TIMEOUTS)
    sw.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    return sw


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.DEBUG, logger="ryu_pptp_alg")

    def events(**wanted):
        """The call-event lines, as dicts, with these pairs."""
        found = []
        for record in caplog.records:
            message = record.getMessage()
            if message.startswith(PREFIX + "call event="):
                pairs = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', message))
                if all(pairs.get(k) == str(v) for k, v in wanted.items()):
                    found.append(pairs)
        return found
    return events


def test_a_call_is_three_lines_an_operator_can_grep(switch, lines):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 128)
    peers.from_server(pptp.CallDisconnectNotify(call_id=128))
    assert [e["event"] for e in lines(client="10.0.0.11:40000")] == \
        ["requested", "established", "closed"]
    (established,) = lines(event="established", client_call_id=7)
    conn_id = next(iter(switch.gateway.state.conns))
    assert established == {
        "event": "established", "gateway": "gw1", "dpid": "0x1", "session": f"1-{conn_id}",
        "client": "10.0.0.11:40000", "server": "198.51.100.10:1723",
        "public": f"{peers.public[0]}:{peers.public[1]}", "direction": "outbound",
        "client_call_id": "7", "public_call_id": "7", "server_call_id": "128",
        "path": "fast"}
    (closed,) = lines(event="closed")
    assert closed["reason"] == "disconnect"


def test_a_cleared_call_says_so(switch, lines):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 128)
    peers.from_client(pptp.CallClearRequest(call_id=7))
    peers.from_server(pptp.CallDisconnectNotify(call_id=128))
    assert [e["reason"] for e in lines(event="closed")] == ["clear"]


def test_a_stopped_connection_ends_its_calls_with_reason_stop(switch, lines):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 128)
    peers.call(8, 129)
    peers.from_client(pptp.StopControlConnectionRequest())
    assert [(e["client_call_id"], e["reason"]) for e in lines(event="closed")] == \
        [("7", "stop"), ("8", "stop")]


def test_idle_gre_and_teardown_give_their_reasons(switch, clock, lines):
    first, second = Peers(switch, 1), Peers(switch, 2)
    first.start()
    first.call(7, 128)
    switch.tick(clock, TIMEOUTS.gre_idle + 1)  # no GRE: its flows time out
    assert [e["reason"] for e in lines(event="closed", client_call_id=7)] == ["idle"]
    second.start()
    second.call(9, 130)
    conn = next(c for c in switch.gateway.state.conns.values() if c.client_port == 40000
                and str(c.client_ip) == "10.0.0.12")
    msgs, _ = switch.gateway.teardown(conn.id)
    switch.apply(msgs)
    assert [e["reason"] for e in lines(event="closed", client_call_id=9)] == ["teardown"]


def test_a_refused_flow_is_a_path_change_line(clock, lines):
    switch = FakeSwitch.create(named_config((PUBLIC, PUBLIC2)), clock, TIMEOUTS)
    switch.table_limits[pipeline.TABLE_GRE] = STATIC + 3  # one call's flows
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    for port, server_id in ((1, 0x80), (2, 0x90)):
        peers = Peers(switch, port)
        peers.start()
        peers.call(7, server_id)
    (change,) = lines(event="path")
    assert (change["client"], change["from"], change["path"]) == \
        ("10.0.0.12:40000", "fast", "slow")


def test_every_line_of_a_gateway_names_it(switch, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="ryu_pptp_alg")
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 128)
    switch.send(1, peers.client.segment(fr.TCP_ACK | fr.TCP_PSH, b"\x00\x10garbage!"))
    switch.gateway.datapath_down()
    switch.tick(clock, TIMEOUTS.control_idle + 1)
    gateway_records = [r for r in caplog.records if r.name.startswith("ryu_pptp_alg")
                       and r.name != "ryu_pptp_alg.compiled"]
    assert len(gateway_records) > 5
    for record in gateway_records:
        assert record.getMessage().startswith(PREFIX), record.getMessage()
        assert (record.gateway, record.dpid) == ("gw1", 1)


def test_a_gateway_without_a_name_is_named_by_its_dpid(caplog):
    log = GatewayLog(logging.getLogger("ryu_pptp_alg.test"), "", 0x2A)
    with caplog.at_level(logging.INFO, "ryu_pptp_alg.test"):
        log.info("%d%% done", 50)
    assert caplog.records[-1].getMessage() == "dpid=0x2a 50% done"


def test_a_name_with_spaces_is_quoted():
    assert GatewayLog(logging.getLogger("x"), 'edge "a" 1', 1).prefix == \
        'gateway="edge \\"a\\" 1" dpid=0x1 '
