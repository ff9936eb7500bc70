"""What real peers never do, through the real switch: a scapy client owning its TCP
segments (several calls on one control connection, messages split byte by byte,
coalesced, retransmitted and reordered) against a minimal PAC that records what
arrives. One public address, so the second client's colliding call ID is translated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import ExitStack

import pytest

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.proc import wait_for

DPID = 0xD1
SERVER_IP = "198.51.100.10"
PUBLIC = "203.0.113.1"
CLIENTS = {1: "10.0.0.11", 2: "10.0.0.12"}


@pytest.fixture
def net(ovs_running, run_id, tmp_path):
    config = {"gateways": [{"dpid": DPID, "inside_ports": [1, 2], "outside_ports": [10],
                            "inside_address": "10.0.0.1/24", "public_addresses": [PUBLIC]}]}
    with ExitStack() as stack:
        controller = stack.enter_context(Controller(config, tmp_path / "ctl"))
        bridge = stack.enter_context(ovs.Bridge(f"pas{run_id}", DPID, controller.of_port))
        clients = {}
        for port, ip in CLIENTS.items():
            ns = clients[port] = stack.enter_context(Namespace(f"pa{run_id}c{port}"))
            ns.attach(bridge, port, f"{ip}/24", gateway="10.0.0.1")
            # The scapy client owns this TCP connection: keep the kernel's RSTs out.
            ns.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST",
                   "-j", "DROP")
        server = stack.enter_context(Namespace(f"pa{run_id}sv"))
        server.attach(bridge, 10, f"{SERVER_IP}/24")
        server.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        log = tmp_path / "pac.jsonl"
        pac = server.popen([sys.executable, "-m", "ryu_pptp_alg.testbed.mini_pac",
                            "--out", str(log), "--seconds", "60"],
                           stdout=subprocess.PIPE, text=True)
        stack.callback(pac.kill)
        assert pac.stdout.readline().strip() == "listening"
        yield controller, clients, log


def pns(ns: Namespace, port: int, *args: str) -> list[dict]:
    result = ns.run(sys.executable, "-m", "ryu_pptp_alg.testbed.scapy_pns",
                    "--local", CLIENTS[port], "--server", SERVER_IP, *args, timeout=60)
    return json.loads(result.stdout.splitlines()[-1])["replies"]


def server_saw(log, message_type: str) -> list[dict]:
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line for line in lines if line["type"] == message_type]


def test_two_calls_then_a_colliding_request_split_byte_by_byte_and_retransmitted(net):
    controller, clients, log = net
    replies = pns(clients[1], 1, "--call-ids", "7,8", "--split", "messages", "--keep-open")
    assert [(r["type"], r.get("peer_call_id")) for r in replies][1:] == [
        ("OutgoingCallReply", 7), ("OutgoingCallReply", 8)]
    replies = pns(clients[2], 2, "--call-ids", "7", "--split", "bytes", "--retransmit",
                  "--sport", "42001", "--keep-open")
    # The client gets its own call ID back ...
    assert [(r["type"], r.get("peer_call_id")) for r in replies][1:] == [
        ("OutgoingCallReply", 7)]
    # ... while the server saw three distinct IDs from one public address, each once.
    requests = wait_for(lambda: len(r := server_saw(log, "OutgoingCallRequest")) == 3 and r,
                        10, "three Outgoing-Call-Requests at the server")
    assert {r["peer"].split(":")[0] for r in requests} == {PUBLIC}
    assert sorted(r["call_id"] for r in requests) == [7, 8, 9]
    sessions = {s["client"]: s for s in controller.get("/pptp/sessions")["sessions"]}
    first, second = sessions["10.0.0.11:42000"], sessions["10.0.0.12:42001"]
    assert [c["client_call_id"] for c in first["calls"]] == [7, 8]  # two calls, one connection
    assert [(c["client_call_id"], c["public_call_id"], c["path"]) for c in second["calls"]] == [
        (7, 9, "slow")]
    assert second["errors"] == {}


def test_coalesced_messages_in_one_segment(net):
    controller, clients, log = net
    replies = pns(clients[1], 1, "--call-ids", "5,6", "--split", "coalesce", "--clear")
    assert [r["type"] for r in replies] == [
        "StartControlConnectionReply", "OutgoingCallReply", "OutgoingCallReply",
        "CallDisconnectNotify", "CallDisconnectNotify"]
    cleared = wait_for(lambda: len(r := server_saw(log, "CallClearRequest")) == 2 and r, 10,
                       "both Call-Clear-Requests at the server")
    assert [r["call_id"] for r in cleared] == [5, 6]
    # Cleared in the same segment that requested them: the calls end on the server's
    # Call-Disconnect-Notify, before any GRE flow was installed.
    (gateway,) = controller.get("/pptp/gateways")["gateways"]
    assert gateway["counters"]["calls_requested"] == 2
    assert gateway["counters"]["calls_closed"] == 2
    assert gateway["gre_pairs"] == 0
    (session,) = controller.get("/pptp/sessions")["sessions"]
    assert session["calls"] == [] and session["errors"] == {}
